"""Rich renderings of result data, one module per command area: `render_*(result, console)`.

Commands print `--json` (the result's `to_dict`) or one of these; nothing parses their text.
Tables come from `edgekit.ui.table`, which fits them to the console width: whole cells in the
key columns, wrapping free text, dropping the optional columns it names when space runs out.
"""
