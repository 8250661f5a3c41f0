"""Neighbourhood overlap between two spaces, and label overlap of one space (METHODS.md).

- ``neighbourhood_overlap``: the same points in two representations; the mean over
  points of ``|NN_k^A(i) & NN_k^B(i)| / k``. 1 for identical spaces, about ``k / N``
  for independent ones.
- ``label_overlap``: for a point of class ``c`` (``n_c`` points), the fraction of its
  ``max(1, floor(f n_c))`` nearest neighbours that share its class; averaged within each
  class, then over classes (DADApy's ``return_label_overlap(class_fraction=f)``).

>>> import torch
>>> a = torch.tensor([[1, 2], [0, 2], [1, 0]])
>>> b = torch.tensor([[2, 1], [2, 1], [1, 0]])
>>> round(neighbour_overlap(a, b, k=2), 4)
0.8333
>>> label_neighbours(torch.tensor([0, 0, 1, 1]), 0.5).tolist()
[1, 1, 1, 1]
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

__all__ = [
    "neighbour_overlap",
    "neighbour_overlap_points",
    "label_neighbours",
    "label_overlap_from_graph",
]


def neighbour_overlap(
    indices_a: Int[Tensor, "point ka"], indices_b: Int[Tensor, "point kb"], *, k: int
) -> float:
    """Mean fraction of shared ``k`` nearest neighbours (both lists nearest first)."""
    return float(_shared_neighbours(indices_a, indices_b, k=k).double().mean() / k)


def neighbour_overlap_points(
    indices_a: Int[Tensor, "point ka"], indices_b: Int[Tensor, "point kb"], *, k: int
) -> Float[Tensor, " point"]:
    """Per point, the fraction of shared ``k`` nearest neighbours (float64, on the CPU).

    >>> neighbour_overlap_points(torch.tensor([[1, 2], [0, 2]]), torch.tensor([[2, 1], [2, 1]]), k=2).tolist()
    [1.0, 0.5]
    """
    return (_shared_neighbours(indices_a, indices_b, k=k).double() / k).cpu()


def _shared_neighbours(indices_a: Tensor, indices_b: Tensor, *, k: int) -> Tensor:
    """``[point]`` counts of neighbours in both ``k``-lists."""
    a, b = indices_a[:, :k], indices_b[:, :k].to(indices_a.device)
    if a.shape[1] < k or b.shape[1] < k:
        raise ValueError(f"need {k} neighbours per point, have {a.shape[1]} and {b.shape[1]}")
    if a.device.type == "cpu":  # each list is distinct: shared = equal neighbours once sorted
        both = np.concatenate([a.numpy(), b.numpy()], axis=1)
        both.sort(axis=1)
        return torch.from_numpy((both[:, 1:] == both[:, :-1]).sum(1).astype(np.int64))
    shared = torch.zeros(a.shape[0], dtype=torch.long, device=a.device)
    step = max(1, 2**24 // (k * k))
    for s in range(0, a.shape[0], step):  # [step, k, k] comparisons at a time
        shared[s : s + step] = (a[s : s + step, :, None] == b[s : s + step, None, :]).any(2).sum(1)
    return shared


def label_neighbours(codes: Int[Tensor, " point"], class_fraction: float) -> Int[Tensor, " point"]:
    """Per point, ``max(1, floor(class_fraction * n_c))`` for its class ``c``."""
    counts = torch.bincount(codes)
    m = torch.floor(counts.double() * class_fraction).long().clamp(min=1)
    return m[codes]


def label_overlap_from_graph(
    indices: Int[Tensor, "point k"], codes: Int[Tensor, " point"], class_fraction: float
) -> float:
    """Label overlap from a neighbour list holding at least ``max(m_c)`` neighbours."""
    codes = codes.to(indices.device)
    m = label_neighbours(codes, class_fraction)
    depth = int(m.max())
    if indices.shape[1] < depth:
        raise ValueError(f"need {depth} neighbours per point, the graph has {indices.shape[1]}")
    same = codes[indices[:, :depth]] == codes[:, None]  # [point, depth]
    within = torch.arange(depth, device=indices.device)[None, :] < m[:, None]
    per_point = (same & within).sum(1).double() / m.double()
    n_classes = int(codes.max()) + 1
    sums = torch.zeros(n_classes, dtype=torch.float64, device=codes.device)
    sums.index_add_(0, codes, per_point)
    counts = torch.bincount(codes, minlength=n_classes).double()
    present = counts > 0
    return float((sums[present] / counts[present]).mean())
