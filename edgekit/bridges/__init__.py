"""Bridges turn one model form into another (torch -> onnx, onnx -> savedmodel, ...).

Targets accept a few forms; `routes.plan` chains bridges to reach one of them.
"""
from .base import BRIDGES, Bridge, ConvertContext

__all__ = ["BRIDGES", "Bridge", "ConvertContext"]
