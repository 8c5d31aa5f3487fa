"""The application layer: one function per ``artdup`` command, taking typed arguments, returning results."""
