"""Representations: extraction, projections, layer geometry and probes.

Names are imported lazily (``import idiomlens.representations.cli`` and
``idiomlens.representations.geometry.cli`` stay torch-free).
``idiomlens.representations.geometry`` is the geometry subpackage; its ``geometry()``
convenience is ``idiomlens.geometry`` / ``idiomlens.representations.geometry.geometry``.
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
    "intrinsic_dimension": ".geometry",
    "neighbourhood_overlap": ".geometry",
    "label_overlap": ".geometry",
    "density_clusters": ".geometry",
    "GeometryResult": ".geometry",
    "GeometryConfig": ".geometry",
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
