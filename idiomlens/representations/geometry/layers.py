"""From a :class:`Representations` to per-layer point sets and their shared graph.

Everything the metric runners have in common: checking and encoding labels (one clear
error for a missing one), choosing layers, dropping duplicate rows (jointly for two
representations compared point by point), and building each layer's one
:class:`~.knn.KNNGraph` deep enough for every metric requested (held across calls by
:mod:`.graphs`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..._blas import torch_on_one_thread
from ..result import Representations
from .graphs import graph_for
from .knn import KNNGraph, resolve_device, spare_workspace, unique_rows

__all__ = ["LayerPoints", "resolve_labels", "resolve_layers", "iter_layers", "check_same_rows"]

MIN_POINTS = 3


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _encode(name: str, values: Sequence[Any], row_ids: Sequence[str]) -> Tensor:
    """Codes ``0, 1, ...`` in order of first appearance."""
    bad = [i for i, v in enumerate(values) if _missing(v)]
    if bad:
        more = f" (and {len(bad) - 1} more rows)" if len(bad) > 1 else ""
        raise ValueError(f"label {name!r} is missing for row {row_ids[bad[0]]!r}{more}")
    keys = [v if isinstance(v, (str, int, float, bool)) else str(v) for v in values]
    codes = {key: i for i, key in enumerate(dict.fromkeys(keys))}
    return torch.tensor([codes[key] for key in keys], dtype=torch.long)


def resolve_labels(reps: Representations, labels: Any) -> dict[str, Tensor]:
    """``{name: [row] int codes}`` for ``labels``.

    ``labels`` is ``None`` (every label field of ``reps``), a field name, a list of
    field names (of another length than the rows), a ``{name: per-row values}`` mapping,
    or one sequence of per-row values (named ``"label"``). A missing value (``None`` / NaN) is an error naming the row.
    """
    row_ids = reps.row_ids
    if labels is None:
        fields: Mapping[str, Sequence[Any]] = reps.labels
    elif isinstance(labels, str) or (
        isinstance(labels, (list, tuple))
        and len(labels) != len(row_ids)
        and all(isinstance(x, str) for x in labels)
    ):
        names = [labels] if isinstance(labels, str) else list(labels)
        unknown = [x for x in names if x not in reps.labels]
        if unknown:
            raise KeyError(
                f"no label field {unknown[0]!r}; the representations have {sorted(reps.labels)}"
            )
        fields = {x: reps.labels[x] for x in names}
    else:
        fields = dict(labels) if isinstance(labels, Mapping) else {"label": labels}
    out = {}
    for name, values in fields.items():
        values = values.tolist() if isinstance(values, Tensor) else list(values)
        if len(values) != len(row_ids):
            raise ValueError(f"label {name!r} has {len(values)} values for {len(row_ids)} rows")
        out[str(name)] = _encode(str(name), values, row_ids)
    return out


def resolve_layers(reps: Representations, layers: Sequence[int] | None) -> tuple[int, ...]:
    """``layers`` (default: all of ``reps``), checked to be present."""
    if layers is None:
        return reps.layers
    missing = [int(x) for x in layers if int(x) not in reps.layers]
    if missing:
        raise ValueError(f"layer {missing[0]} is not in the representations (layers {reps.layers})")
    return tuple(int(x) for x in layers)


def check_same_rows(a: Representations, b: Representations) -> None:
    """Two representations compared point by point must hold the same row ids, in order."""
    ra, rb = a.row_ids, b.row_ids
    if len(ra) != len(rb):
        raise ValueError(f"the two representations have {len(ra)} and {len(rb)} rows")
    for i, (x, y) in enumerate(zip(ra, rb, strict=True)):
        if x != y:
            raise ValueError(
                f"row {i} has id {x!r} in the first representations but {y!r} in the second"
            )


@dataclass(frozen=True)
class LayerPoints:
    """One layer after de-duplication: the kept rows, the count dropped, the graph(s)."""

    layer: int
    keep: Tensor  # [point] row indices into the representations, ascending
    n_duplicates: int
    graph: KNNGraph
    other: KNNGraph | None = None  # the second representations' graph, same points

    @property
    def n_points(self) -> int:
        return int(self.keep.numel())


def _vectors(reps: Representations, layer: int, dev: torch.device) -> Tensor:
    was_loaded = layer in getattr(reps, "_tensors", {})
    x = reps.vectors(layer)
    if not was_loaded and getattr(reps, "_root", None) is not None:
        reps._tensors.pop(layer, None)  # stream layers: do not keep what we loaded
    x = x.to(dev, torch.float32)
    sums = x.sum(1)  # a NaN or inf makes its row's sum non-finite (one pass, not two)
    if not torch.isfinite(sums).all():
        suspects = (~torch.isfinite(sums)).nonzero().flatten()  # or a sum overflowed
        bad = suspects[(~torch.isfinite(x[suspects])).any(1)]
        if bad.numel():
            row = int(bad[0])
            raise ValueError(f"layer {layer}: row {reps.row_ids[row]!r} has a non-finite value")
    return x


def iter_layers(
    reps: Representations,
    layers: Sequence[int],
    plan: Any,
    *,
    other: Representations | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    desc: str = "geometry",
) -> Iterator[LayerPoints]:
    """Yield each layer's :class:`LayerPoints`.

    ``plan(keep) -> (k, ranks, k_other)`` sizes the graph of ``reps`` and that of ``other``.
    """
    dev = resolve_device(device)
    # torch on one thread between the searches: its OpenMP threads' busy-waiting would
    # take the cores the searches' own pool needs (see torch_on_one_thread)
    with torch_on_one_thread(), spare_workspace() as scratch:  # one search block for all
        for layer in tqdm(layers, desc=desc, unit="layer", disable=not progress):
            x = _vectors(reps, layer, dev)
            keep = unique_rows(x)
            y = None
            if other is not None:
                y = _vectors(other, layer, dev)
                keep_y = unique_rows(y)
                keep = keep[torch.isin(keep, keep_y)]
            n, n_rows = int(keep.numel()), int(x.shape[0])
            if n < MIN_POINTS:
                raise ValueError(
                    f"layer {layer}: only {n} distinct points after dropping "
                    f"{n_rows - n} duplicate rows; geometry needs at least {MIN_POINTS}"
                )
            k, ranks, k_other = plan(keep.cpu())
            if n < n_rows:  # no copy when nothing was dropped
                x, y = x[keep], (y[keep] if y is not None else None)
            graph = graph_for(reps, layer, keep, x, k=k, ranks=ranks, device=dev, workspace=scratch)
            graph_y = None
            if other is not None and y is not None:
                # only its k_other lists are read: searched no deeper (selection 23, not 40 ms)
                graph_y = graph_for(other, layer, keep, y, k=k_other, ranks=(), device=dev, workspace=scratch, min_depth=k_other)  # fmt: skip
            yield LayerPoints(layer, keep.cpu(), n_rows - n, graph, graph_y)
