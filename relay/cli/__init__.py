"""The `relay` command: one small module per sub-command."""
