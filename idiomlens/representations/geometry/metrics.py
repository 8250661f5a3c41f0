"""The per-layer geometry metrics of METHODS.md, as a table of specs over one shared graph.

Each metric is a :class:`MetricSpec`: what it needs from a layer's neighbour graph (how
many neighbours, distances at which ranks) and how it turns the graph into rows. A run
over several metrics (:func:`run_metrics`, used by :func:`~.result.geometry`) builds one
graph per layer deep enough for all of them; each public function below runs one.

Every function returns a DataFrame with one row per layer (GRIDE: per layer and scale;
label metrics: per layer and label field), plus ``n_points`` (distinct rows used) and
``n_duplicates`` (exact duplicate rows dropped, the first of each kept).

>>> import torch
>>> from idiomlens.representations import Representations
>>> g = torch.Generator().manual_seed(0)
>>> reps = Representations.from_tensors({0: torch.randn(300, 4, generator=g)}, labels=[0, 1] * 150)
>>> intrinsic_dimension(reps, progress=False).columns.tolist()
['layer', 'id', 'n_points', 'n_duplicates']
>>> float(neighbourhood_overlap(reps, reps, k=10, progress=False)["overlap"][0])
1.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from ..result import Representations
from .adp import adp_clusters, knn_log_density
from .intrinsic import check_twonn_fit, gride, gride_scales, gride_single, twonn
from .layers import LayerPoints, check_same_rows, iter_layers, resolve_labels, resolve_layers
from .overlap import (
    label_neighbours,
    label_overlap_from_graph,
    neighbour_overlap,
    neighbour_overlap_points,
)

__all__ = [
    "MetricSpec",
    "intrinsic_dimension",
    "neighbourhood_overlap",
    "neighbourhood_overlap_points",
    "label_overlap",
    "density_clusters",
    "run_metrics",
    "adjusted_rand_index",
    "twonn_spec",
    "gride_spec",
    "clusters_spec",
    "label_overlap_spec",
    "overlap_spec",
]

Needs = tuple[int, set[int]]  # (neighbours, ranks with exact distances)


@dataclass(frozen=True)
class MetricSpec:
    """A metric: ``needs(n_points, codes) -> (k, ranks)``; ``rows(points, codes) -> [row]``."""

    name: str
    needs: Callable[[int, dict[str, Tensor]], Needs]
    rows: Callable[[LayerPoints, dict[str, Tensor]], list[dict[str, Any]]]
    needs_other: bool = False


def _check_k(name: str, k: int, n: int) -> None:
    if not 1 <= k <= n - 1:
        raise ValueError(f"{name} needs 1 <= k <= N - 1 = {n - 1} neighbours; got k={k}")


def twonn_spec(*, fraction: float = 0.9, fit: str = "ml") -> MetricSpec:
    """TwoNN: ``id`` from ``r2 / r1`` (``fit``: ``"ml"`` or DADApy's ``"linear"``)."""
    check_twonn_fit(fit)
    return MetricSpec(
        "twonn",
        lambda n, codes: (1, {1, 2}),
        lambda p, codes: [
            {"id": twonn(p.graph.distance(1), p.graph.distance(2), fraction=fraction, fit=fit)}
        ],
    )


def gride_spec(*, max_scale: int | None = None) -> MetricSpec:
    """GRIDE at every scale ``n1 = 1, 2, 4, ...`` with ``2 n1 < N`` (``n1 <= max_scale``)."""

    def needs(n: int, codes: dict[str, Tensor]) -> Needs:
        return 1, {r for s in gride_scales(n, max_scale) for r in (s, 2 * s)}

    def rows(p: LayerPoints, codes: dict[str, Tensor]) -> list[dict[str, Any]]:
        scales = gride_scales(p.n_points, max_scale)
        ids, errs = gride(p.graph.rank_distances, p.graph.ranks, scales)
        return [
            {"scale": s, "n2": 2 * s, "id": float(i), "id_err": float(e)}
            for s, i, e in zip(scales, ids.tolist(), errs.tolist(), strict=True)
        ]

    return MetricSpec("gride", needs, rows)


def adjusted_rand_index(labels: Tensor, clusters: Tensor) -> float:
    """Adjusted Rand index of two labellings of the same points (scikit-learn's
    ``adjusted_rand_score``, pair-counting form, same special cases).

    Computed here rather than imported: scikit-learn's import costs about 2 s the first
    time (scipy.stats), more than the whole geometry of two 5,000-point layers.

    >>> adjusted_rand_index(torch.tensor([0, 0, 1, 1]), torch.tensor([5, 5, 2, 2]))
    1.0
    >>> adjusted_rand_index(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1]))
    -0.5
    """
    if labels.shape != clusters.shape or labels.dim() != 1:
        raise ValueError(
            f"need two labellings of the same points; got {labels.shape}, {clusters.shape}"
        )
    _, a = labels.unique(return_inverse=True)
    cluster_ids, b = clusters.unique(return_inverse=True)
    m = cluster_ids.numel()
    table = torch.bincount(a * m + b, minlength=(int(a.max()) + 1) * m).view(-1, m).long()
    n = int(labels.numel())  # pair counts as Python ints: n^4 overflows int64
    squares = int((table * table).sum())
    same_cluster = int((table * table.sum(0)[None, :]).sum()) - squares  # other class
    same_class = int((table * table.sum(1)[:, None]).sum()) - squares  # other cluster
    tp = squares - n
    tn = n * n - same_cluster - same_class - squares
    fn, fp = same_class, same_cluster
    if fn == 0 and fp == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def clusters_spec(
    *,
    Z: float = 1.6,
    k: int = 16,
    id_scale: int | None = None,
    maxk: int = 100,
) -> MetricSpec:
    """kNN density (``k`` neighbours, GRIDE ID at scale ``id_scale``, default ``k``) + ADP."""
    scale = k if id_scale is None else id_scale

    def needs(n: int, codes: dict[str, Tensor]) -> Needs:
        _check_k("density_clusters", max(k, 2 * scale), n)
        return max(k, min(maxk, n - 1)), {k, scale, 2 * scale}

    def rows(p: LayerPoints, codes: dict[str, Tensor]) -> list[dict[str, Any]]:
        g = p.graph
        d = gride_single(g.distance(scale), g.distance(2 * scale), scale)
        log_den, err = knn_log_density(g.distance(k), d, k)
        depth = max(k, min(maxk, p.n_points - 1))
        clusters = adp_clusters(g.indices[:, :depth], log_den, err, k=k, Z=Z)
        base = {"n_clusters": int(clusters.max()) + 1, "id": d}
        if not codes:
            return [{**base, "labels": None, "ari": float("nan")}]
        return [
            {**base, "labels": name, "ari": adjusted_rand_index(c, clusters)}
            for name, c in codes.items()
        ]

    return MetricSpec("density_clusters", needs, rows)


def label_overlap_spec(*, class_fraction: float = 0.3) -> MetricSpec:
    """Label overlap with ``max(1, floor(f n_c))`` neighbours per class."""
    if not 0.0 < class_fraction <= 1.0:
        raise ValueError(f"class_fraction must be in (0, 1], got {class_fraction}")

    def needs(n: int, codes: dict[str, Tensor]) -> Needs:
        depths = [int(label_neighbours(c, class_fraction).max()) for c in codes.values()]
        return min(max(depths, default=1), n - 1), set()

    def rows(p: LayerPoints, codes: dict[str, Tensor]) -> list[dict[str, Any]]:
        return [
            {
                "labels": name,
                "overlap": label_overlap_from_graph(p.graph.indices, c, class_fraction),
            }
            for name, c in codes.items()
        ]

    return MetricSpec("label_overlap", needs, rows)


def overlap_spec(*, k: int = 30, per_point: bool = False) -> MetricSpec:
    """Neighbourhood overlap with the second representations' graph of the same points.

    ``per_point``: rows also hold ``points`` (each kept point's overlap, ``[point]``) and
    ``keep`` (their row indices).
    """

    def needs(n: int, codes: dict[str, Tensor]) -> Needs:
        _check_k("neighbourhood_overlap", k, n)
        return k, set()

    def rows(p: LayerPoints, codes: dict[str, Tensor]) -> list[dict[str, Any]]:
        assert p.other is not None
        row: dict[str, Any] = {"overlap": neighbour_overlap(p.graph.indices, p.other.indices, k=k)}
        if per_point:
            row["points"] = neighbour_overlap_points(p.graph.indices, p.other.indices, k=k)
            row["keep"] = p.keep
        return [row]

    return MetricSpec("neighbourhood_overlap", needs, rows, needs_other=True)


def run_metrics(
    reps: Representations,
    specs: Sequence[MetricSpec],
    *,
    codes: dict[str, Tensor] | None = None,
    other: Representations | None = None,
    layers: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """Run ``specs`` on one shared graph per layer: ``{metric name: [row, ...]}``."""
    codes = codes or {}
    if other is not None:
        check_same_rows(reps, other)
        common = [x for x in resolve_layers(reps, layers) if x in other.layers]
        if not common:
            raise ValueError(f"no layer in common: {reps.layers} and {other.layers}")
        layers = common
    elif any(s.needs_other for s in specs):
        raise ValueError("neighbourhood_overlap needs a second representations (other=...)")
    layers = resolve_layers(reps, layers)

    def plan(keep: Tensor) -> tuple[int, set[int], int]:
        kept = {name: c[keep] for name, c in codes.items()}
        needs = [s.needs(int(keep.numel()), kept) for s in specs]
        k_other = max([k for s, (k, _) in zip(specs, needs, strict=True) if s.needs_other] or [1])
        return max(k for k, _ in needs), set().union(*(r for _, r in needs)), k_other

    out: dict[str, list[dict[str, Any]]] = {s.name: [] for s in specs}
    for points in iter_layers(reps, layers, plan, other=other, device=device, progress=progress):
        kept = {name: c[points.keep] for name, c in codes.items()}
        common_cols = {"n_points": points.n_points, "n_duplicates": points.n_duplicates}
        for s in specs:
            out[s.name] += [
                {"layer": points.layer, **row, **common_cols} for row in s.rows(points, kept)
            ]
    return out


def _frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame(rows)


_RUN_DOC = "layers: default all; device: default the GPU when present; progress: a bar over layers."


def intrinsic_dimension(
    reps: Representations,
    *,
    method: str = "twonn",
    fraction: float = 0.9,
    twonn_fit: str = "ml",
    max_scale: int | None = None,
    layers: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Any:
    """Intrinsic dimension per layer: ``method="twonn"`` (column ``id``) or ``"gride"``.

    GRIDE gives one row per layer and scale (columns ``scale`` = ``n1``, ``n2``, ``id``,
    ``id_err``), at ``n1 = 1, 2, 4, ...`` while ``2 n1 < N`` (or ``n1 <= max_scale``).
    TwoNN keeps the smallest ``fraction`` of the ratios; ``twonn_fit="linear"`` is
    DADApy's default ``compute_id_2NN()`` fit instead of the maximum likelihood (see
    :mod:`.intrinsic`).
    """
    specs = {
        "twonn": lambda: twonn_spec(fraction=fraction, fit=twonn_fit),
        "gride": lambda: gride_spec(max_scale=max_scale),
    }
    if method not in specs:
        raise ValueError(f"unknown method {method!r}; use one of {sorted(specs)}")
    rows = run_metrics(reps, [specs[method]()], layers=layers, device=device, progress=progress)
    return _frame(rows[method])


def neighbourhood_overlap(
    a: Representations,
    b: Representations,
    *,
    k: int = 30,
    layers: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Any:
    """Per layer (those of ``a`` also in ``b``), the mean fraction of shared ``k``-NN.

    ``a`` and ``b`` must hold the same row ids in the same order (an error otherwise);
    rows duplicated in either are dropped from both.
    """
    rows = run_metrics(
        a, [overlap_spec(k=k)], other=b, layers=layers, device=device, progress=progress
    )
    return _frame(rows["neighbourhood_overlap"])


def neighbourhood_overlap_points(
    a: Representations,
    b: Representations,
    *,
    k: int = 30,
    layers: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[tuple[int, ...], Float[Tensor, "row layer"]]:
    """:func:`neighbourhood_overlap` point by point: ``(layers, [row, layer] overlaps)``.

    Row ``i``, layer ``l``: ``|NN_k^A(i) & NN_k^B(i)| / k`` (float64); NaN for a row
    dropped as a duplicate in that layer. Per layer, the mean over the non-NaN rows is
    :func:`neighbourhood_overlap`'s ``overlap`` (what a bootstrap over rows resamples).

    >>> g = torch.Generator().manual_seed(0)
    >>> x = Representations.from_tensors({0: torch.randn(20, 3, generator=g)})
    >>> layers, per_row = neighbourhood_overlap_points(x, x, k=4, progress=False)
    >>> layers, tuple(per_row.shape), bool((per_row == 1).all())
    ((0,), (20, 1), True)
    """
    rows = run_metrics(
        a, [overlap_spec(k=k, per_point=True)], other=b, layers=layers, device=device,
        progress=progress,
    )["neighbourhood_overlap"]  # fmt: skip
    out = torch.full((a.n_rows, len(rows)), float("nan"), dtype=torch.float64)
    for j, row in enumerate(rows):
        out[row["keep"], j] = row["points"]
    return tuple(int(r["layer"]) for r in rows), out


def label_overlap(
    reps: Representations,
    *,
    labels: Any = None,
    class_fraction: float = 0.3,
    layers: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Any:
    """Per layer and label field, the label overlap (column ``overlap``).

    ``labels``: a field name, field names, ``{name: values}`` or per-row values
    (default: every label field of ``reps``).
    """
    codes = resolve_labels(reps, labels)
    if not codes:
        raise ValueError("label_overlap needs labels: the representations have none; pass labels=")
    rows = run_metrics(
        reps,
        [label_overlap_spec(class_fraction=class_fraction)],
        codes=codes,
        layers=layers,
        device=device,
        progress=progress,
    )
    return _frame(rows["label_overlap"])


def density_clusters(
    reps: Representations,
    *,
    Z: float = 1.6,
    k: int = 16,
    labels: Any = None,
    id_scale: int | None = None,
    maxk: int = 100,
    layers: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Any:
    """Per layer, ADP clusters (``n_clusters``) and their ``ari`` with each label field.

    Density: kNN with ``k`` neighbours at the GRIDE ID of scale ``id_scale`` (``n1``;
    default ``k``; the geometry paper's scripts use ``n1 = k / 2``, i.e. ``id_scale=8``
    for ``k=16``). ``maxk`` neighbours are searched when assigning points (DADApy's
    default 100). ``ari`` is NaN when there are no labels.
    """
    codes = resolve_labels(reps, labels)
    rows = run_metrics(
        reps,
        [clusters_spec(Z=Z, k=k, id_scale=id_scale, maxk=maxk)],
        codes=codes,
        layers=layers,
        device=device,
        progress=progress,
    )
    return _frame(rows["density_clusters"])


for _f in (intrinsic_dimension, neighbourhood_overlap, label_overlap, density_clusters):
    _f.__doc__ = f"{_f.__doc__.rstrip()}\n\n    {_RUN_DOC}\n"
