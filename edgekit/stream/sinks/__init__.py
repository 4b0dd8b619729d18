"""Where annotated frames go, one module per sink; see base.py for the contract."""
