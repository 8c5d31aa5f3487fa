"""The ``artdup`` command's own pieces: one-line messages, input folders, the detect subcommand, reports."""
