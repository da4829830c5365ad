"""GeoCLIP in plain Python (torch, transformers, numpy): no Qt, no qgis.

Heavy imports happen on first use, so ``import model_utils`` is cheap.
"""

from __future__ import annotations

__all__ = ["GeoCLIP"]


def __getattr__(name: str):
    if name == "GeoCLIP":
        from .model.geoclip import GeoCLIP

        return GeoCLIP
    raise AttributeError(f"module 'model_utils' has no attribute {name!r}")
