"""Representations: extraction, projections, layer geometry and probes.

Names are imported lazily (``import idiomlens.representations.cli`` stays torch-free).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "Representations": ".result",
    "extract": ".extraction",
    "STORAGE_DTYPES": ".extraction",
    "SITES": ".names",
    "POOLS": ".names",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
