"""Representations: extraction, projections, layer geometry and probes.

Names are imported lazily (on first use), so the command-line modules below this
package (``representations.cli``, ``geometry.cli``, ``probes.command``) import
without torch. ``idiomlens.representations.geometry`` is the geometry subpackage; its
``geometry()`` convenience is ``idiomlens.geometry``.
"""

from __future__ import annotations

from .._lazy import lazy_exports

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

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
