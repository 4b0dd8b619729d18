"""edgekit: convert, quantize, verify, run and benchmark vision models on edge hardware."""
__version__ = "0.1.0"

# The name on PyPI: `edgekit` there is an unrelated project, so the distribution is edgekit-vision
# (the import name and the command stay `edgekit`). Every install hint is built from this.
DISTRIBUTION = "edgekit-vision"


def pip_install(extra: str | None = None) -> str:
    """The command that installs edgekit (with an extra): `pip install 'edgekit-vision[media]'`."""
    return f"pip install '{DISTRIBUTION}[{extra}]'" if extra else f"pip install {DISTRIBUTION}"
