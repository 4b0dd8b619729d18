"""Files that run on the board, shipped inside deploy bundles (not imported by edgekit)."""
