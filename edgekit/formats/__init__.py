"""Model formats: one module per format, each registering a `Format` record (see base.py).

    from edgekit.formats import FORMATS, sniff
    fmt = sniff("out/model_int8.xml")      # Format(name="openvino", ...), read from the content
    FORMATS.get("tflite").backend          # "litert"
"""
from .base import (FORMATS, LABEL_FILES, Evidence, Format, Inspection, companion_files, for_suffix, labels_beside,
                   metadata_card, sniff)

__all__ = ["FORMATS", "LABEL_FILES", "Evidence", "Format", "Inspection", "companion_files",
           "for_suffix", "metadata_card", "labels_beside", "sniff"]
