"""CLI commands by area, loaded lazily by `edgekit.cli.EdgekitGroup` (see LAZY_COMMANDS).

Each module imports only click and light edgekit modules at top level; frameworks are imported
inside the command body. Shared option helpers live in `edgekit.commands.common`.
"""
