"""One module per ``boxstrap`` subcommand; see :mod:`boxstrap.cli` for the protocol."""

__all__: list[str] = []
