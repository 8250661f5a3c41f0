"""Results of :func:`~idiomlens.validate_heads` and :func:`~idiomlens.compare_rankings`.

Both keep the *per-example* effects of every ablated set (the top-k set, each control
set, each head alone), so chunked runs merge with ``Result.concat`` and every summary
statistic (effect, p-value, CI, Spearman) is computed from the merged examples: a
chunked, resumed or re-batched run gives the same numbers as one uninterrupted run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from .._io import Result
from .ranking import head_label
from .stats import bootstrap_ci, empirical_p_value, precision_at_k, spearman

__all__ = ["ValidationResult", "ComparisonResult"]

Head = tuple[int, int]


def _heads(table: Tensor) -> list[Head]:
    return [(int(a), int(b)) for a, b in table.tolist()]


@dataclass
class ValidationResult(Result):
    """A causal check of one head ranking (METHODS.md, "Validating a head ranking").

    Attributes:
        ids: example ids, corpus order.
        topk_values: ``[example]`` effect (``metric``) of ablating the top-``k`` heads together.
        control_values: ``[example, control]`` the same for each random control set.
        head_values: ``[example, layer, head]`` the same for each head ablated alone.
        clean_correct: ``[example]`` greedy next-word prediction right without ablation.
        heads: ``[k, 2]`` the top-``k`` heads ``(layer, head)``, best first.
        control_heads: ``[control, k, 2]`` each control set (drawn from the other heads).
        ranking_scores: ``[layer, head]`` the ranking's score, ``NaN`` outside the ranking.
        ranking: the ranking's name; metric, kind, positions: the ablation settings.
        seed: control-set seed (also the resample and bootstrap seed).
        n_boot, level: bootstrap resamples and CI level.
        true_heads: known causal heads for :attr:`precision_at_k` (may be empty).
        meta: provenance (model, corpus, library version).

    Derived (from the per-example values): :attr:`effect`, :attr:`control_effects`,
    :attr:`p_value`, :attr:`ci`, :attr:`head_effects`, :attr:`spearman`,
    :attr:`precision_at_k`.
    """

    ids: tuple[str, ...]
    topk_values: Float[Tensor, " example"]
    control_values: Float[Tensor, "example control"]
    head_values: Float[Tensor, "example layer head_index"]
    clean_correct: Bool[Tensor, " example"]
    heads: Int[Tensor, "k 2"]
    control_heads: Int[Tensor, "control k 2"]
    ranking_scores: Float[Tensor, "layer head_index"]
    ranking: str = "ranking"
    metric: str = "logprob_diff"
    kind: str = "zero"
    positions: str = "all"
    seed: int = 0
    n_boot: int = 1000
    level: float = 0.95
    true_heads: tuple[Sequence[int], ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    per_example: ClassVar[tuple[str, ...]] = (
        "topk_values",
        "control_values",
        "head_values",
        "clean_correct",
    )

    def __post_init__(self) -> None:
        self.true_heads = tuple((int(a), int(b)) for a, b in self.true_heads)
        n = len(self.ids)
        shapes = [
            self.topk_values.shape[0],
            self.control_values.shape[0],
            self.head_values.shape[0],
        ]
        if any(s != n for s in shapes):
            raise ValueError(f"ValidationResult: {n} ids but per-example tensors of {shapes} rows")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def k(self) -> int:
        """Number of top heads ablated together."""
        return int(self.heads.shape[0])

    @property
    def top_heads(self) -> list[Head]:
        """The top-``k`` heads, best first."""
        return _heads(self.heads)

    @property
    def effect(self) -> float:
        """Mean over examples of the top-``k`` joint ablation effect."""
        return float(self.topk_values.double().mean())

    @property
    def control_effects(self) -> Float[Tensor, " control"]:
        """Mean effect of each control set (float64)."""
        return self.control_values.double().mean(0)

    @property
    def p_value(self) -> float:
        """Fraction of controls at least as strong as the top-``k`` set, +1 corrected."""
        return empirical_p_value(self.effect, self.control_effects)

    @property
    def n_possible_controls(self) -> int:
        """How many distinct control sets exist: ``C(n_heads_total - k, k)``."""
        n_layers, n_heads = self.ranking_scores.shape
        return math.comb(n_layers * n_heads - self.k, self.k)

    @property
    def distinct_p_value(self) -> float:
        """The p-value over the *distinct* control sets drawn, each counted once.

        Equal to :attr:`p_value` in spirit for large models; for small ones it exposes
        the floor ``1 / (1 + n_possible_controls)`` of a test against every possible
        set (drawing 200 sets of 15 possible ones cannot give p < 1/16).
        """
        sets, first = torch.unique(
            self.control_heads.reshape(len(self.control_heads), -1), dim=0, return_inverse=True
        )
        keep = [int((first == i).nonzero()[0, 0]) for i in range(len(sets))]
        return empirical_p_value(self.effect, self.control_effects[keep])

    @property
    def ci(self) -> tuple[float, float]:
        """Bootstrap CI (``level``) of :attr:`effect` over examples."""
        return bootstrap_ci(self.topk_values, n_boot=self.n_boot, level=self.level, seed=self.seed)

    @property
    def head_effects(self) -> Float[Tensor, "layer head_index"]:
        """Mean single-head ablation effect per head."""
        return self.head_values.double().mean(0)

    @property
    def spearman(self) -> float:
        """Spearman correlation of the ranking score with the single-head effect, over
        every head of the model; heads outside the ranking tie below every ranked head."""
        scores = self.ranking_scores.double().reshape(-1)
        floor = torch.nan_to_num(scores, nan=0.0).min() - 1 if scores.isfinite().any() else 0.0
        return spearman(torch.where(scores.isnan(), floor, scores), self.head_effects.reshape(-1))

    @property
    def precision_at_k(self) -> float | None:
        """Fraction of the top-``k`` heads among :attr:`true_heads` (``None`` if unknown)."""
        return precision_at_k(self.top_heads, self.true_heads) if self.true_heads else None

    def passed(self, alpha: float = 0.05) -> bool:
        """``p_value < alpha`` and a positive effect."""
        return self.p_value < alpha and self.effect > 0

    def summary(self) -> dict[str, Any]:
        """The headline numbers as a flat dict (one row of :meth:`ComparisonResult.to_dataframe`)."""
        lo, hi = self.ci
        ctrl = self.control_effects
        return {
            "ranking": self.ranking,
            "top_heads": ", ".join(head_label(*h) for h in self.top_heads),
            "metric": self.metric,
            "effect": self.effect,
            "ci_low": lo,
            "ci_high": hi,
            "control_mean": float(ctrl.mean()),
            "control_max": float(ctrl.max()),
            "n_controls": int(ctrl.numel()),
            "p_value": self.p_value,
            "distinct_p_value": self.distinct_p_value,
            "n_possible_controls": self.n_possible_controls,
            "spearman": self.spearman,
            "precision_at_k": self.precision_at_k,
            "n": len(self),
        }

    def to_dataframe(self) -> Any:
        """One row per head: ``head, layer, head_index, score, rank`` (1 = best, empty
        outside the ranking), ``in_top_k`` and ``effect`` (single-head ablation)."""
        import pandas as pd

        n_layers, n_heads = self.ranking_scores.shape
        order = torch.sort(
            torch.nan_to_num(self.ranking_scores.reshape(-1), nan=-float("inf")),
            descending=True,
            stable=True,
        ).indices.tolist()
        rank = {(i // n_heads, i % n_heads): r + 1 for r, i in enumerate(order)}
        rows = []
        for layer in range(n_layers):
            for h in range(n_heads):
                score = float(self.ranking_scores[layer, h])
                rows.append(
                    {
                        "head": head_label(layer, h),
                        "layer": layer,
                        "head_index": h,
                        "score": score,
                        "rank": rank[(layer, h)] if score == score else None,
                        "in_top_k": (layer, h) in self.top_heads,
                        "effect": float(self.head_effects[layer, h]),
                    }
                )
        return pd.DataFrame(rows)

    def plot(self, **kwargs: Any) -> Any:
        """Top-``k`` effect against the control distribution, beside per-head score vs
        single-head effect (:func:`idiomlens.viz.validation.plot_validation`)."""
        from ..viz.validation import plot_validation

        return plot_validation(self, **kwargs)


@dataclass
class ComparisonResult(Result):
    """Several rankings validated on the same examples, controls and single-head runs.

    The fields are those of :class:`ValidationResult` with a leading ``ranking`` axis
    (``topk_values [example, ranking]``, ``control_values [example, ranking, control]``,
    ``heads [ranking, k, 2]``, ...); ``head_values`` is shared. ``result[name]`` is one
    ranking's :class:`ValidationResult`; :meth:`to_dataframe` puts them side by side.
    """

    ids: tuple[str, ...]
    names: tuple[str, ...]
    topk_values: Float[Tensor, "example ranking"]
    control_values: Float[Tensor, "example ranking control"]
    head_values: Float[Tensor, "example layer head_index"]
    clean_correct: Bool[Tensor, " example"]
    heads: Int[Tensor, "ranking k 2"]
    control_heads: Int[Tensor, "ranking control k 2"]
    ranking_scores: Float[Tensor, "ranking layer head_index"]
    metric: str = "logprob_diff"
    kind: str = "zero"
    positions: str = "all"
    seed: int = 0
    n_boot: int = 1000
    level: float = 0.95
    true_heads: tuple[Sequence[int], ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    per_example: ClassVar[tuple[str, ...]] = ValidationResult.per_example

    def __post_init__(self) -> None:
        self.true_heads = tuple((int(a), int(b)) for a, b in self.true_heads)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, name: str) -> ValidationResult:
        if name not in self.names:
            raise KeyError(f"unknown ranking {name!r}; rankings are {self.names}")
        r = self.names.index(name)
        return ValidationResult(
            ids=self.ids,
            topk_values=self.topk_values[:, r],
            control_values=self.control_values[:, r],
            head_values=self.head_values,
            clean_correct=self.clean_correct,
            heads=self.heads[r],
            control_heads=self.control_heads[r],
            ranking_scores=self.ranking_scores[r],
            ranking=name,
            metric=self.metric,
            kind=self.kind,
            positions=self.positions,
            seed=self.seed,
            n_boot=self.n_boot,
            level=self.level,
            true_heads=self.true_heads,
            meta=dict(self.meta),
        )

    @property
    def results(self) -> dict[str, ValidationResult]:
        """Every ranking's :class:`ValidationResult`, in the order given."""
        return {name: self[name] for name in self.names}

    def to_dataframe(self, alpha: float = 0.05) -> Any:
        """One row per ranking: top heads, effect and CI, control mean / max, p-value,
        Spearman, precision@k and ``passed`` (``p < alpha`` with a positive effect)."""
        import pandas as pd

        rows = []
        for res in self.results.values():
            rows.append({**res.summary(), "passed": res.passed(alpha)})
        return pd.DataFrame(rows)

    def plot(self, **kwargs: Any) -> Any:
        """Each ranking's top-``k`` effect and CI against its control distribution
        (:func:`idiomlens.viz.validation.plot_comparison`)."""
        from ..viz.validation import plot_comparison

        return plot_comparison(self, **kwargs)
