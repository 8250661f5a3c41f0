"""``geometry(reps, ...)``: every metric of a layer from one shared graph, as a tidy result.

>>> import torch
>>> from idiomlens.representations import Representations
>>> g = torch.Generator().manual_seed(0)
>>> reps = Representations.from_tensors({0: torch.randn(200, 3, generator=g), 1: torch.randn(200, 3, generator=g)},
...                                     labels=["a", "b"] * 100)
>>> res = geometry(reps, max_scale=4, progress=False)
>>> sorted(set(res.to_dataframe()["metric"]))
['ari', 'id_gride', 'id_twonn', 'label_overlap', 'n_clusters']
>>> res.plot().layout.title.text
'Geometry per layer (custom, custom)'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..._io import Result
from ..result import Representations
from .layers import resolve_labels
from .metrics import (
    clusters_spec,
    gride_spec,
    label_overlap_spec,
    overlap_spec,
    run_metrics,
    twonn_spec,
)
from .names import METRICS

__all__ = ["GeometryConfig", "GeometryResult", "geometry", "METRICS"]


@dataclass(frozen=True, kw_only=True)
class GeometryConfig:
    """Parameters of every geometry metric (METHODS.md "Geometry" defaults).

    Attributes:
        fraction: TwoNN: fraction of the ``mu`` ratios kept (the 10% largest are censored).
        twonn_fit: TwoNN: ``"ml"`` (maximum likelihood) or ``"linear"`` (DADApy's
            default ``compute_id_2NN()``).
        max_scale: GRIDE: largest ``n1`` (default: every ``n1`` with ``2 n1 < N``).
        Z, k, id_scale, maxk: ADP significance, kNN-density neighbours, GRIDE scale of
            the density's ID (default ``k``), neighbours searched by ADP.
        class_fraction: label overlap's ``f``.
        overlap_k: neighbourhood overlap's ``k``.
    """

    fraction: float = 0.9
    twonn_fit: str = "ml"
    max_scale: int | None = None
    Z: float = 1.6
    k: int = 16
    id_scale: int | None = None
    maxk: int = 100
    class_fraction: float = 0.3
    overlap_k: int = 30

    def specs(self, metrics: Sequence[str]) -> list[Any]:
        """The :class:`~.metrics.MetricSpec` of each metric name."""
        table = {
            "twonn": lambda: twonn_spec(fraction=self.fraction, fit=self.twonn_fit),
            "gride": lambda: gride_spec(max_scale=self.max_scale),
            "density_clusters": lambda: clusters_spec(
                Z=self.Z, k=self.k, id_scale=self.id_scale, maxk=self.maxk
            ),
            "label_overlap": lambda: label_overlap_spec(class_fraction=self.class_fraction),
            "neighbourhood_overlap": lambda: overlap_spec(k=self.overlap_k),
        }
        unknown = [m for m in metrics if m not in table]
        if unknown:
            raise ValueError(f"unknown geometry metric {unknown[0]!r}; use any of {METRICS}")
        return [table[m]() for m in metrics]


@dataclass
class GeometryResult(Result):
    """Tidy geometry metrics: one entry per ``(layer, metric[, scale][, labels])``.

    Attributes:
        layer: ``[entry]`` layer.
        metric: ``id_twonn``, ``id_gride``, ``n_clusters``, ``ari``, ``label_overlap``,
            ``neighbourhood_overlap``.
        value, error: ``[entry]`` float64 (``error``: GRIDE's, NaN elsewhere).
        scale: GRIDE's ``n1`` (else ``None``); labels: the label field (else ``None``).
        n_points, n_duplicates: ``[entry]`` distinct rows used / duplicates dropped.
    """

    layer: Int[Tensor, " entry"]
    metric: tuple[str, ...]
    value: Float[Tensor, " entry"]
    error: Float[Tensor, " entry"]
    scale: tuple[int | None, ...]
    labels: tuple[str | None, ...]
    n_points: Int[Tensor, " entry"]
    n_duplicates: Int[Tensor, " entry"]
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dataframe(self) -> Any:
        """Columns ``layer, metric, value, error, scale, labels, n_points, n_duplicates``."""
        import pandas as pd

        return pd.DataFrame(
            {
                "layer": self.layer.tolist(),
                "metric": list(self.metric),
                "value": self.value.tolist(),
                "error": self.error.tolist(),
                "scale": pd.array(list(self.scale), dtype="Int64"),
                "labels": list(self.labels),
                "n_points": self.n_points.tolist(),
                "n_duplicates": self.n_duplicates.tolist(),
            }
        )

    def plot(self, metrics: Sequence[str] | None = None, *, title: str | None = None) -> Any:
        """Layer profiles: one panel per metric, one line per GRIDE scale / label field."""
        from ...viz.geometry import plot_geometry

        default = f"Geometry per layer ({self.meta.get('site')}, {self.meta.get('pool')})"
        return plot_geometry(self.to_dataframe(), metrics=metrics, title=title or default)


_COLUMNS = {  # metric name -> [(tidy name, value column)]
    "twonn": [("id_twonn", "id")],
    "gride": [("id_gride", "id")],
    "density_clusters": [("n_clusters", "n_clusters"), ("ari", "ari")],
    "label_overlap": [("label_overlap", "overlap")],
    "neighbourhood_overlap": [("neighbourhood_overlap", "overlap")],
}


def _tidy(rows: dict[str, list[dict[str, Any]]], meta: dict[str, Any]) -> GeometryResult:
    fields = ("layer", "metric", "value", "error", "scale", "labels", "n_points", "n_duplicates")
    out: dict[str, list[Any]] = {f: [] for f in fields}
    once: set[tuple[int, str]] = set()  # n_clusters: once per layer, not per label field
    for name, entries in rows.items():
        for row in entries:
            for tidy_name, col in _COLUMNS[name]:
                if tidy_name == "ari" and row.get("labels") is None:
                    continue
                if tidy_name == "n_clusters" and (row["layer"], tidy_name) in once:
                    continue
                once.add((row["layer"], tidy_name))
                labelled = tidy_name not in ("n_clusters",)
                out["layer"].append(row["layer"])
                out["metric"].append(tidy_name)
                out["value"].append(float(row[col]))
                out["error"].append(float(row.get("id_err", float("nan"))))
                out["scale"].append(row.get("scale"))
                out["labels"].append(row.get("labels") if labelled else None)
                out["n_points"].append(row["n_points"])
                out["n_duplicates"].append(row["n_duplicates"])
    return GeometryResult(
        layer=torch.tensor(out["layer"], dtype=torch.long),
        metric=tuple(out["metric"]),
        value=torch.tensor(out["value"], dtype=torch.float64),
        error=torch.tensor(out["error"], dtype=torch.float64),
        scale=tuple(out["scale"]),
        labels=tuple(out["labels"]),
        n_points=torch.tensor(out["n_points"], dtype=torch.long),
        n_duplicates=torch.tensor(out["n_duplicates"], dtype=torch.long),
        meta=meta,
    )


def geometry(
    reps: Representations,
    *,
    other: Representations | None = None,
    labels: Any = None,
    metrics: Sequence[str] | None = None,
    config: GeometryConfig | None = None,
    layers: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    **overrides: Any,
) -> GeometryResult:
    """All geometry metrics per layer, from one neighbour graph per layer.

    Args:
        reps: the representations.
        other: a second representations of the same rows (e.g. a fine-tuned model's)
            for ``neighbourhood_overlap``; rows duplicated in either are then dropped
            from both, for every metric.
        labels: label fields for ``ari`` and ``label_overlap`` (default: all of ``reps``).
        metrics: any of :data:`METRICS` (default: all that apply — label metrics when
            there are labels, the overlap when ``other`` is given).
        config: a :class:`GeometryConfig`; ``overrides`` replace its fields
            (``geometry(reps, Z=2.0, max_scale=64)``).
        layers, device, progress: as for the single metrics.
    """
    config = dataclasses.replace(config or GeometryConfig(), **overrides)
    codes = resolve_labels(reps, labels)
    if metrics is None:
        metrics = [m for m in METRICS[:3]]
        metrics += ["label_overlap"] if codes else []
        metrics += ["neighbourhood_overlap"] if other is not None else []
    if "label_overlap" in metrics and not codes:
        raise ValueError("label_overlap needs labels: the representations have none; pass labels=")
    rows = run_metrics(
        reps,
        config.specs(metrics),
        codes=codes,
        other=other,
        layers=layers,
        device=device,
        progress=progress,
    )
    from ... import __version__

    meta = {
        "site": reps.site,
        "pool": reps.pool,
        "config": dataclasses.asdict(config),
        "metrics": list(metrics),
        "labels": sorted(codes),
        "representations": reps.meta,
        "other": other.meta if other is not None else None,
        "idiomlens_version": __version__,
    }
    return _tidy(rows, meta)
