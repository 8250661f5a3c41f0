"""Representations: extraction, projections, layer geometry and probes.

Names are imported lazily (on first use), so the command-line modules below this
package (``representations.cli``, ``geometry.cli``, ``probes.command``) import
without torch. ``idiomlens.representations.geometry`` is the geometry subpackage; its
``geometry()`` convenience is ``idiomlens.geometry``.
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
    "train_probes": ".probes",
    "ProbeResult": ".probes",
    "compare_probes": ".probes",
    "ProbeComparison": ".probes",
    "probe_profile": ".probes",
    "ProbeProfile": ".probes",
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
