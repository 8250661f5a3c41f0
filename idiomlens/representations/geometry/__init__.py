"""Geometry of representations, per layer (METHODS.md "Geometry").

Intrinsic dimension (TwoNN, GRIDE over scales), kNN density + Advanced Density Peaks
clusters and their ARI with labels, label overlap, and the neighbourhood overlap of two
representations of the same rows — all from one neighbour graph per layer
(:mod:`.knn`: exact duplicates dropped, blocked float32 search on the GPU when present,
exact float64 distances where ratios are taken). Re-implemented from DADApy
(:mod:`.intrinsic`, :mod:`.adp`, :mod:`.overlap`), without depending on it.

- :func:`intrinsic_dimension`, :func:`density_clusters`, :func:`label_overlap`,
  :func:`neighbourhood_overlap`: one metric, a DataFrame with one row per layer;
- :func:`geometry`: all of them from one graph per layer, a tidy :class:`GeometryResult`
  with ``.to_dataframe()``, ``.plot()``, ``.save()``; CLI ``idiomlens geometry``.

Separate calls on the same representations object share its graphs too (:mod:`.graphs`:
held per object and layer, 256 MiB at most; ``graphs.clear(reps)`` drops them).
"""

from __future__ import annotations

from ..._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "intrinsic_dimension": ".metrics",
    "neighbourhood_overlap": ".metrics",
    "neighbourhood_overlap_points": ".metrics",
    "label_overlap": ".metrics",
    "density_clusters": ".metrics",
    "geometry": ".summary",
    "GeometryConfig": ".summary",
    "GeometryResult": ".summary",
    "METRICS": ".names",
    "KNNGraph": ".knn",
    "knn_graph": ".knn",
    "unique_rows": ".knn",
    "twonn": ".intrinsic",
    "gride": ".intrinsic",
    "gride_scales": ".intrinsic",
    "knn_log_density": ".adp",
    "adp_clusters": ".adp",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
