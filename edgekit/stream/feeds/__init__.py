"""Camera feeds (frames in), one module per kind; see base.py for the contract."""
