"""``HeadScores``: per-example idiom / literal head features and combined scores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from .._heads import HeadRank, Ranking
from .._io import Result
from .combine import DEFAULT_COMBINE, combined_head_scores
from .features import FEATURE_NAMES

__all__ = ["HeadScores", "top_heads"]


def top_heads(
    values: Float[Tensor, "layer head_index"],
    k: int,
    layers: tuple[int, ...] | None = None,
    *,
    absolute: bool = False,
) -> Ranking:
    """The ``k`` largest cells of a ``[layer, head]`` table as :class:`HeadRank` records
    ``(layer, head, value)`` (by magnitude when ``absolute``; ``NaN`` last).

    Ties go to the smaller ``(layer, head)``; ``layers`` maps row indices to model layers.

    >>> top = top_heads(torch.tensor([[0.125, 0.75], [0.75, 0.5]]), 3)
    >>> top == [(0, 1, 0.75), (1, 0, 0.75), (1, 1, 0.5)], top[0].label
    (True, 'L0H1')
    """
    n_heads = values.shape[1]
    flat = values.flatten()
    key = flat.abs() if absolute else flat
    key = torch.nan_to_num(key.double(), nan=-float("inf"))
    order = torch.sort(key, descending=True, stable=True).indices[:k].tolist()
    rows = layers or tuple(range(values.shape[0]))
    return Ranking(HeadRank(rows[i // n_heads], i % n_heads, float(flat[i])) for i in order)


@dataclass
class HeadScores(Result):
    """Idiom or literal scores of every head on every example (METHODS.md).

    Attributes:
        ids: example ids, in corpus order.
        features: ``[example, layer, head, feature]`` the five features, float32, in
            :attr:`feature_names` order.
        scores: ``[example, layer, head]`` ``sigmoid(sum of the features)``.
        feature_names: ``("mean", "neg_std", "max", "phrase", "contribution")``.
        kind: ``"idiom"`` or ``"literal"``.
        layers: the model layers along the ``layer`` axis (all layers by default).
        meta: model name and shape, dtype, padding side, corpus hash, parameters and the
            library version of the run that produced the scores. ``corpus_hash`` covers
            the scored examples (ids, tokens, spans); a result merged by :meth:`concat`
            (chunked or sharded runs) carries the hash of its parts' hashes, in order.

    ``mean()`` / ``std()`` return plain ``[layer, head]`` tensors (over examples), so
    they compose with torch; ``top(k)`` ranks heads by the mean combined score.
    ``mean(combine=...)`` / ``top(k, combine=...)`` use a calibrated combination of the
    features instead (``"zscore"``, ``"rank"``; :mod:`idiomlens.scoring.combine`).
    """

    ids: tuple[str, ...]
    features: Float[Tensor, "example layer head_index feature"]
    scores: Float[Tensor, "example layer head_index"]
    feature_names: tuple[str, ...] = FEATURE_NAMES
    kind: str = "idiom"
    layers: tuple[int, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    per_example: ClassVar[tuple[str, ...]] = ("features", "scores")

    def __post_init__(self) -> None:
        if len(self.ids) != self.scores.shape[0] or self.features.shape[:3] != self.scores.shape:
            raise ValueError(
                f"HeadScores: {len(self.ids)} ids, features {tuple(self.features.shape)}, "
                f"scores {tuple(self.scores.shape)} do not agree"
            )
        if not self.layers:
            self.layers = tuple(range(self.scores.shape[1]))

    def __len__(self) -> int:
        return len(self.ids)

    def _values(self, feature: str | None) -> Tensor:
        if feature is None or feature == "score":
            return self.scores
        if feature not in self.feature_names:
            raise ValueError(f"unknown feature {feature!r}; have {self.feature_names}")
        return self.features[..., self.feature_names.index(feature)]

    def mean(
        self, feature: str | None = None, *, combine: str = DEFAULT_COMBINE
    ) -> Float[Tensor, "layer head_index"]:
        """Mean over examples of the combined score (or of one ``feature``).

        ``combine`` picks how the five features make one score per head
        (:mod:`idiomlens.scoring.combine`): ``"sigmoid_sum"`` (METHODS.md, the default:
        the mean of :attr:`scores`), ``"zscore"`` (features averaged over examples,
        standardised across heads, summed) or ``"rank"`` (mean rank across features).
        It applies to the combined score only, not together with ``feature``.

        >>> feats = torch.tensor([[[[0.1, 0.0, 0.0, 0.0, 0.0], [0.3, 0.0, 0.0, 0.0, 10.0]]]])
        >>> s = HeadScores(ids=("a",), features=feats, scores=torch.sigmoid(feats.sum(-1)))
        >>> [round(x, 2) for x in s.mean(combine="rank")[0].tolist()]
        [1.3, 1.7]
        >>> s.top(1)[0].label, s.top(1, combine="zscore")[0].label
        ('L0H1', 'L0H1')
        """
        if combine == DEFAULT_COMBINE:
            return self._values(feature).mean(0)
        if feature is not None and feature != "score":
            raise ValueError(
                f"combine={combine!r} combines the features; it does not apply to "
                f"feature={feature!r}"
            )
        return combined_head_scores(self, combine=combine)

    def std(self, feature: str | None = None) -> Float[Tensor, "layer head_index"]:
        """Unbiased std over examples (0 with fewer than two examples)."""
        values = self._values(feature)
        if values.shape[0] < 2:
            return torch.zeros_like(values[0])
        return values.std(0)

    def top(
        self, k: int = 10, feature: str | None = None, *, combine: str = DEFAULT_COMBINE
    ) -> Ranking:
        """The ``k`` heads with the highest mean score, as ``HeadRank(layer, head, value)``.

        ``combine`` as in :meth:`mean` (the value is that combination's score). Ties go
        to the smaller ``(layer, head)``.
        """
        return top_heads(self.mean(feature, combine=combine), k, self.layers)

    def select(self, ids: list[str] | tuple[str, ...]) -> HeadScores:
        """The scores of ``ids`` (in that order); raises ``KeyError`` naming a missing id."""
        where = {i: n for n, i in enumerate(self.ids)}
        missing = [i for i in ids if i not in where]
        if missing:
            raise KeyError(f"ids not in these HeadScores: {missing[:5]}")
        idx = torch.tensor([where[i] for i in ids], dtype=torch.long)
        return HeadScores(
            ids=tuple(ids),
            features=self.features[idx],
            scores=self.scores[idx],
            feature_names=self.feature_names,
            kind=self.kind,
            layers=self.layers,
            meta={k: v for k, v in self.meta.items() if k not in ("corpus_hash", "n_examples")},
        )

    def to_dataframe(self) -> Any:
        """Long format: one row per (example, layer, head) with ``id, layer, head, score``
        and one column per feature."""
        import pandas as pd

        n, n_layers, n_heads = self.scores.shape
        frame = {
            "id": np.repeat(np.array(self.ids, dtype=object), n_layers * n_heads),
            "layer": np.tile(np.repeat(np.array(self.layers), n_heads), n),
            "head": np.tile(np.arange(n_heads), n * n_layers),
            "score": self.scores.reshape(-1).numpy(),
        }
        flat = self.features.reshape(-1, len(self.feature_names)).numpy()
        for j, name in enumerate(self.feature_names):
            frame[name] = flat[:, j]
        df = pd.DataFrame(frame)
        df.insert(1, "kind", self.kind)
        return df

    def plot(self, other: HeadScores | None = None, **kwargs: Any) -> Any:
        """A plotly layer x head heatmap of the mean score; with ``other`` (scores of the
        other kind on the same model), a scatter of this mean score against it per head."""
        from ..viz.heads import plot_head_scores, plot_score_scatter

        if other is None:
            return plot_head_scores(self, **kwargs)
        return plot_score_scatter(self, other, **kwargs)
