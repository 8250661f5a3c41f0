"""Ways to combine the five head features into one score per head.

METHODS.md defines the combined idiom (literal) score of an example as
``sigmoid(mean + neg_std + max + phrase + contribution)``; a head's score is its mean
over examples. That sum adds features on different scales, so whichever feature varies
most across heads dominates the ranking. Two calibrated alternatives standardise the
features across heads first. All three work on a ``[layer, head]`` table and are kept in
:data:`COMBINE` (a new variant is a row in that table):

- ``"sigmoid_sum"`` (the METHODS.md definition and the default): mean over examples of
  ``sigmoid(sum of the features)``, i.e. ``HeadScores.mean()``;
- ``"zscore"``: each feature is averaged over examples, standardised across the heads
  of the table (``(m - mean) / std``, unbiased std; a feature that is constant across
  heads contributes 0), and the five z-scores are summed;
- ``"rank"``: each feature is averaged over examples and ranked across heads (1 =
  lowest, ties share their average rank); the head's score is its mean rank over the
  features (higher = more idiom-like, as for the other two).

The functions are pure: they read ``scores.features`` / ``scores.scores`` and never
change the :class:`~idiomlens.scoring.HeadScores`.

>>> import torch
>>> from idiomlens.scoring import HeadScores
>>> feats = torch.tensor([[[[0.1, 0.0, 0.0, 0.0, 0.0], [0.3, 0.0, 0.0, 0.0, 10.0]]]])
>>> s = HeadScores(ids=("a",), features=feats, scores=torch.sigmoid(feats.sum(-1)))
>>> [round(x, 2) for x in combined_head_scores(s, combine="rank")[0].tolist()]
[1.3, 1.7]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["COMBINE", "DEFAULT_COMBINE", "combined_head_scores", "average_ranks", "zscore_sum"]

#: The METHODS.md definition, the default everywhere.
DEFAULT_COMBINE = "sigmoid_sum"


def average_ranks(values: Float[Tensor, " n"]) -> Float[Tensor, " n"]:
    """1-based ranks of ``values`` (1 = smallest); tied values share their average rank.

    This is ``scipy.stats.rankdata(values, method="average")``.

    >>> average_ranks(torch.tensor([3.0, 1.0, 3.0, 2.0])).tolist()
    [3.5, 1.0, 3.5, 2.0]
    """
    flat = values.reshape(-1).double()
    order = torch.sort(flat, stable=True).indices
    sorted_vals = flat[order]
    # runs of equal values: first position of each run and its length
    _, inverse, counts = torch.unique_consecutive(
        sorted_vals, return_inverse=True, return_counts=True
    )
    ends = torch.cumsum(counts, 0).double()  # 1-based last rank of each run
    mean_rank = ends - (counts.double() - 1) / 2
    ranks = torch.empty_like(flat)
    ranks[order] = mean_rank[inverse]
    return ranks.to(values.dtype if values.is_floating_point() else torch.float64)


def _feature_means(scores: Any) -> Float[Tensor, "feature layer head_index"]:
    return scores.features.float().mean(0).permute(2, 0, 1)


def _sigmoid_sum(scores: Any) -> Tensor:
    return torch.sigmoid(scores.features.float().sum(-1)).mean(0)


def zscore_sum(
    means: Float[Tensor, "feature layer head_index"],
) -> Float[Tensor, "layer head_index"]:
    """Sum over features of each feature's z-score across the heads of the table."""
    flat = means.reshape(means.shape[0], -1).double()
    if flat.shape[1] < 2:
        return torch.zeros(means.shape[1:], dtype=means.dtype)
    std = flat.std(1, keepdim=True)
    z = torch.where(std > 0, (flat - flat.mean(1, keepdim=True)) / std.clamp(min=1e-300), 0.0)
    return z.sum(0).reshape(means.shape[1:]).to(means.dtype)


def _zscore(scores: Any) -> Tensor:
    return zscore_sum(_feature_means(scores))


def _rank(scores: Any) -> Tensor:
    means = _feature_means(scores)
    ranks = torch.stack([average_ranks(m.reshape(-1)) for m in means])
    return ranks.mean(0).reshape(means.shape[1:]).float()


#: ``name -> fn(head_scores) -> [layer, head]`` (higher = more idiom-like).
COMBINE: dict[str, Callable[[Any], Tensor]] = {
    "sigmoid_sum": _sigmoid_sum,
    "zscore": _zscore,
    "rank": _rank,
}


def combined_head_scores(
    scores: Any, *, combine: str = DEFAULT_COMBINE
) -> Float[Tensor, "layer head_index"]:
    """One score per head from a :class:`~idiomlens.scoring.HeadScores`, combined by
    ``combine`` (a key of :data:`COMBINE`; see the module docstring).

    Args:
        scores: a ``HeadScores`` (``features [example, layer, head, feature]``).
        combine: ``"sigmoid_sum"`` (METHODS.md, the default), ``"zscore"`` or ``"rank"``.

    Returns:
        ``[layer, head]`` float32 over the layers of ``scores`` (``scores.layers``).
    """
    try:
        fn = COMBINE[combine]
    except KeyError:
        raise ValueError(f"unknown combine {combine!r}; choose one of {sorted(COMBINE)}") from None
    if scores.features.shape[0] == 0:
        raise ValueError("combined_head_scores needs scores of at least one example")
    return fn(scores).float()
