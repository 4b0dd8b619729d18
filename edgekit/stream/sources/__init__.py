"""Frame sources, one module per kind; see base.py for the contract."""
