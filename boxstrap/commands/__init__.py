"""One module per ``boxstrap`` subcommand; see :mod:`boxstrap.cli` for the protocol."""
