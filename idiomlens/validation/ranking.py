"""Head rankings as plain data, and the seeded control sets drawn against them.

:class:`HeadRanking` is what :func:`~idiomlens.validate_heads` validates: heads in rank
order with the score that ranked them. It is a frozen dataclass of JSON data, so it can
be a parameter of a cached run (``run_analysis("validate", ..., params={"ranking":
as_ranking(scores)})``). :func:`as_ranking` builds one from any ranking source:

- ``HeadScores``: the combined score per head (:func:`~idiomlens.scoring.combine.
  combined_head_scores`, ``combine=`` picks the combination);
- ``HeadDetection``: the mean pattern score;
- ``DLAResult``: the mean attribution of each head in ``group`` (default: the result's
  first group, ``"idiom"`` in next-token mode);
- an explicit ordered list of ``(layer, head)``: the first head scores ``n``, the next
  ``n - 1``, ... (only the order matters).

Heads are ordered by decreasing score, ties to the smaller ``(layer, head)``; heads
without a score (layers a ``HeadScores`` did not cover, ``NaN`` attributions) are left
out of the ranking.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .._heads import head_label

__all__ = ["HeadRanking", "as_ranking", "draw_controls", "head_label"]

Head = tuple[int, int]


@dataclass(frozen=True, kw_only=True)
class HeadRanking:
    """Heads in rank order (best first) with the score that ranked them.

    Args:
        heads: ``((layer, head), ...)``, best first, no repeats.
        scores: one score per head, non-increasing (higher = ranked higher).
        name: what produced the ranking (``"idiom score (zscore)"``, ``"explicit"``, ...).

    >>> r = HeadRanking(heads=((0, 1), (1, 0)), scores=(0.9, 0.2), name="mine")
    >>> r.top(1)
    [(0, 1)]
    """

    heads: tuple[Head, ...]
    scores: tuple[float, ...]
    name: str = "ranking"

    def __post_init__(self) -> None:
        heads = tuple((int(layer), int(head)) for layer, head in self.heads)
        object.__setattr__(self, "heads", heads)
        object.__setattr__(self, "scores", tuple(float(s) for s in self.scores))
        if len(self.heads) != len(self.scores):
            raise ValueError(
                f"ranking {self.name!r}: {len(self.heads)} heads but {len(self.scores)} scores"
            )
        if len(set(self.heads)) != len(self.heads):
            dupes = sorted({h for h in self.heads if self.heads.count(h) > 1})
            raise ValueError(f"ranking {self.name!r}: heads repeated: {dupes}")
        if any(not math.isfinite(s) for s in self.scores):
            raise ValueError(f"ranking {self.name!r}: scores must be finite")
        if any(b > a for a, b in zip(self.scores, self.scores[1:], strict=False)):
            raise ValueError(f"ranking {self.name!r}: scores must be non-increasing")

    def top(self, k: int) -> list[Head]:
        """The first ``k`` heads."""
        return list(self.heads[:k])

    def score_table(self, n_layers: int, n_heads: int) -> Float[Tensor, "layer head_index"]:
        """``[layer, head]`` scores, ``NaN`` for heads outside the ranking."""
        out = torch.full((n_layers, n_heads), float("nan"))
        for (layer, head), s in zip(self.heads, self.scores, strict=True):
            if layer >= n_layers or head >= n_heads:
                raise ValueError(
                    f"ranking {self.name!r}: head ({layer}, {head}) out of range for a model "
                    f"with {n_layers} layers and {n_heads} heads"
                )
            out[layer, head] = s
        return out


def _from_table(
    table: Float[Tensor, "layer head_index"], layers: Sequence[int], name: str
) -> HeadRanking:
    flat = table.detach().float().cpu().reshape(-1)
    n_heads = table.shape[1]
    keep = torch.isfinite(flat)
    key = torch.where(keep, flat, -float("inf"))
    order = torch.sort(key, descending=True, stable=True).indices[: int(keep.sum())].tolist()
    heads = tuple((int(layers[i // n_heads]), i % n_heads) for i in order)
    return HeadRanking(heads=heads, scores=tuple(float(flat[i]) for i in order), name=name)


def as_ranking(
    source: Any, *, combine: str | None = None, group: str | None = None, name: str | None = None
) -> HeadRanking:
    """A :class:`HeadRanking` from scores, a detection, a DLA result or a list of heads.

    Args:
        source: ``HeadRanking``, ``HeadScores``, ``HeadDetection``, ``DLAResult`` or an
            ordered sequence of ``(layer, head)``.
        combine: for ``HeadScores``: ``"sigmoid_sum"`` (default), ``"zscore"``, ``"rank"``.
        group: for ``DLAResult``: which position group's attribution ranks the heads.
        name: the ranking's name (default: derived from the source).

    >>> as_ranking([(1, 0), (0, 2)]).scores
    (2.0, 1.0)
    """
    from ..attribution.result import DLAResult
    from ..scoring.combine import DEFAULT_COMBINE, combined_head_scores
    from ..scoring.detect import HeadDetection
    from ..scoring.result import HeadScores

    if combine is not None and not isinstance(source, HeadScores):
        raise ValueError(f"combine={combine!r} applies to HeadScores, not {type(source).__name__}")
    if isinstance(source, HeadRanking):
        return (
            source
            if name is None
            else HeadRanking(heads=source.heads, scores=source.scores, name=name)
        )
    if isinstance(source, HeadScores):
        how = combine or DEFAULT_COMBINE
        table = combined_head_scores(source, combine=how)
        return _from_table(table, source.layers, name or f"{source.kind} score ({how})")
    if isinstance(source, HeadDetection):
        return _from_table(source.mean(), source.layers, name or f"{source.pattern} detection")
    if isinstance(source, DLAResult):
        g = group or source.groups[0]
        table = source.head_matrix(g)
        return _from_table(table, tuple(range(source.n_layers)), name or f"DLA ({g})")
    if group is not None:
        raise ValueError(f"group={group!r} applies to a DLAResult, not {type(source).__name__}")
    heads = list(source)
    if not heads or not all(isinstance(h, Sequence) and len(h) == 2 for h in heads):
        raise TypeError(
            "a ranking is a HeadScores, HeadDetection, DLAResult, HeadRanking or a non-empty "
            f"list of (layer, head) pairs; got {type(source).__name__}"
        )
    n = len(heads)
    return HeadRanking(
        heads=tuple((int(h[0]), int(h[1])) for h in heads),
        scores=tuple(float(n - i) for i in range(n)),
        name=name or "explicit",
    )


def draw_controls(
    top: Sequence[Head], n_layers: int, n_heads: int, *, controls: int, seed: int = 0
) -> Int[Tensor, "control k 2"]:
    """``controls`` random sets of ``len(top)`` heads, each drawn from the heads NOT in ``top``.

    Each set is drawn uniformly without replacement within the set (a ``randperm`` of
    the other heads from a local ``torch.Generator(seed)``), independently across sets,
    so two sets may coincide. The heads of a set are sorted. The draw depends only on
    ``top``, the model shape, ``controls`` and ``seed``.

    >>> sets = draw_controls([(0, 0)], 2, 2, controls=3, seed=0)
    >>> tuple(sets.shape), bool((sets == torch.tensor([0, 0])).all(-1).any())
    ((3, 1, 2), False)
    """
    k = len(top)
    chosen = set(top)
    others = [(la, h) for la in range(n_layers) for h in range(n_heads) if (la, h) not in chosen]
    if k < 1:
        raise ValueError("validation needs k >= 1 top heads")
    if controls < 1:
        raise ValueError(f"controls must be >= 1, got {controls}")
    if len(others) < k:
        raise ValueError(
            f"cannot draw control sets of {k} heads from the {len(others)} heads outside the "
            f"top {k} (the model has {n_layers * n_heads} heads); use a smaller k"
        )
    gen = torch.Generator().manual_seed(seed)
    pool = torch.tensor(others, dtype=torch.long)  # [other, 2]
    sets = []
    for _ in range(controls):
        pick = torch.randperm(len(others), generator=gen)[:k].sort().values
        sets.append(pool[pick])
    return torch.stack(sets)
