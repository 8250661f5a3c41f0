"""``average_duplicates``: one row per distinct token id, the mean of its token rows.

The course project's token-semantics plots average every occurrence of a token
(METHODS.md, pool ``tokens``). Groups are ordered by first occurrence (corpus order,
then position); a group's ``example_index`` / ``positions`` are those of its first
occurrence, its labels are a field's value where every occurrence agrees and ``None``
where they differ, and the label ``count`` says how many rows were averaged. Means are
accumulated in float32 and stored in the representation's dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from .result import Representations

__all__ = ["duplicate_groups", "average_duplicates", "group_labels", "group_means"]


def duplicate_groups(token_ids: Int[Tensor, " row"]) -> tuple[Tensor, Tensor]:
    """``(group, first)``: each row's group (groups numbered by first occurrence) and
    each group's first row.

    >>> duplicate_groups(torch.tensor([7, 3, 7, 5, 3]))
    (tensor([0, 1, 0, 2, 1]), tensor([0, 1, 3]))
    """
    n = token_ids.shape[0]
    uniq, inverse = torch.unique(token_ids, return_inverse=True)
    first = torch.full((len(uniq),), n, dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(n), reduce="amin")
    order = first.argsort()
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))
    return rank[inverse], first[order]


def group_labels(labels: dict[str, Sequence[Any]], group: Tensor, n_groups: int) -> dict:
    out: dict[str, list[Any]] = {}
    groups = group.tolist()
    for name, values in labels.items():
        merged: list[Any] = [_UNSET] * n_groups
        for g, v in zip(groups, values, strict=True):
            merged[g] = v if merged[g] is _UNSET or merged[g] == v else None
        out[name] = merged
    out["count"] = torch.bincount(group, minlength=n_groups).tolist()
    return out


_UNSET = object()


def group_means(parts: Any, group: Tensor, n_groups: int, d: int, dtype: torch.dtype) -> Tensor:
    sums = torch.zeros(n_groups, d, dtype=torch.float32)
    start = 0
    for part in parts:
        sums.index_add_(0, group[start : start + part.shape[0]], part.float())
        start += part.shape[0]
    counts = torch.bincount(group, minlength=n_groups).clamp(min=1)
    return (sums / counts[:, None]).to(dtype)


def average_duplicates(reps: Representations) -> Representations:
    """In memory: the token rows of ``reps`` averaged per token id (see the module doc)."""
    if reps.token_ids is None:
        raise ValueError("average_duplicates needs token rows (pool='tokens')")
    group, first = duplicate_groups(reps.token_ids)
    n = len(first)
    tensors = {}
    for layer in reps.layers:
        v = reps.vectors(layer)
        tensors[layer] = group_means([v], group, n, v.shape[1], v.dtype)
    return Representations(
        layers=reps.layers,
        ids=reps.ids,
        site=reps.site,
        pool=reps.pool,
        labels=group_labels(reps.labels, group, n),
        meta={**reps.meta, "average_duplicates": True},
        tensors=tensors,
        token_ids=reps.token_ids[first],
        example_index=reps.example_index[first],
        positions=reps.positions[first],
    )
