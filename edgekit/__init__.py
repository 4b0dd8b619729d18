"""edgekit: convert, quantize, verify, run and benchmark vision models on edge hardware."""
__version__ = "0.1.0"
