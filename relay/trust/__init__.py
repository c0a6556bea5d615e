"""Loading the trust directory (edge: reads files) into immutable snapshots."""
