"""The demo: the example configuration run end to end on loopback."""
