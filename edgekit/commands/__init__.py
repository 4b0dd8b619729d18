"""CLI commands, one module per command (or command group), loaded lazily by
`edgekit.cli.EdgekitGroup` from `edgekit.cli.LAZY_COMMANDS`.

Each command parses its options, makes one library call and renders the typed result with
`edgekit.views.*.render_*` (or prints its `to_dict()` under --json); its exit policy is a
separate function. Modules import only click and light edgekit modules at top level;
frameworks load inside the command body. Shared option helpers live in `commands/common.py`.
"""
