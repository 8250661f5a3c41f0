"""Compare two :class:`HeadScores` per head: mean difference, bootstrap CI, permutation test.

Two designs:

- **paired** (default): the same items scored twice (base vs fine-tuned model on one
  corpus; a figurative sentence vs its paraphrase). Examples are matched by id, or by
  ``pair_key(id)`` (e.g. ``lambda i: i.split("-")[-1]`` to match ``fig-12`` with
  ``para-12``), or by an explicit ``{a_id: b_id}`` mapping. ``d = a - b`` per pair; the CI
  is a percentile bootstrap of ``mean(d)`` over pairs and the p-value a two-sided
  sign-flip permutation test of ``mean(d) = 0``.
- **unpaired**: independent examples; the CI bootstraps each group separately and the
  p-value permutes group labels.

Every resample is a row of a weight matrix, so all heads and all resamples are done by
one matrix product per chunk. Randomness comes from a local ``torch.Generator(seed)``.
p-values are ``(1 + #{|null| >= |observed|}) / (1 + n_perm)``.

The result is a :class:`ScoreComparison` (a :class:`~idiomlens._io.Result`):
``[layer, head]`` tensors of the means, the difference, its CI and p-value, with
``.to_dataframe()`` (one row per head), ``.top(k)``, ``.plot()`` and ``.save/.load``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from .._heads import Ranking
from .._io import Result
from .result import HeadScores, top_heads

__all__ = ["compare_scores", "paired_values", "ScoreComparison"]

_CHUNK = 256  # resamples per matrix product


def paired_values(
    a: HeadScores,
    b: HeadScores,
    pair_key: Callable[[str], str] | Mapping[str, str] | None = None,
    feature: str | None = None,
) -> tuple[Tensor, Tensor, list[tuple[str, str]]]:
    """Matched ``[pair, layer, head]`` values of ``a`` and ``b`` and the matched id pairs."""
    if isinstance(pair_key, Mapping):
        wanted = [(i, pair_key[i]) for i in a.ids if i in pair_key]
    else:
        key = pair_key or (lambda i: i)
        b_by_key: dict[str, str] = {}
        for i in b.ids:
            if key(i) in b_by_key:
                raise ValueError(f"pair key {key(i)!r} is shared by {b_by_key[key(i)]!r} and {i!r}")
            b_by_key[key(i)] = i
        wanted = [(i, b_by_key[key(i)]) for i in a.ids if key(i) in b_by_key]
    if not wanted:
        raise ValueError("no example of a could be paired with one of b")
    a_idx = {i: n for n, i in enumerate(a.ids)}
    b_idx = {i: n for n, i in enumerate(b.ids)}
    missing = [j for _, j in wanted if j not in b_idx]
    if missing:
        raise KeyError(f"ids not in b: {missing[:5]}")
    va = a._values(feature)[torch.tensor([a_idx[i] for i, _ in wanted])]
    vb = b._values(feature)[torch.tensor([b_idx[j] for _, j in wanted])]
    return va, vb, wanted


def _weighted_means(weights_fn: Callable[[int], Tensor], values: Tensor, n: int) -> Tensor:
    """Stack ``weights @ values`` over chunks of resamples: ``[n, layer * head]``."""
    out = []
    for start in range(0, n, _CHUNK):
        w = weights_fn(min(_CHUNK, n - start))  # [chunk, n_examples]
        out.append(w @ values)
    return torch.cat(out)


def _bootstrap_weights(gen: torch.Generator, n_items: int, rows: int) -> Tensor:
    idx = torch.randint(0, n_items, (rows, n_items), generator=gen)
    counts = torch.zeros(rows, n_items, dtype=torch.float64)
    counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))
    return counts / n_items


@dataclass
class ScoreComparison(Result):
    """Per-head comparison of two :class:`HeadScores` (``diff = a - b``).

    Attributes:
        ids: the ids of ``a`` that entered the comparison (paired: the matched ones).
        other_ids: the ids of ``b`` (paired: ``other_ids[i]`` is paired with ``ids[i]``).
        mean_a, mean_b, diff, ci_low, ci_high, p_value: ``[layer, head]`` float64.
        layers: the model layers along the ``layer`` axis.
        n_a, n_b: examples per side (paired: both the number of pairs).
        paired: the design; feature: the compared feature (``None``: combined score).
        meta: the test settings (``n_boot``, ``n_perm``, ``ci``, ``seed``) and the
            ``meta`` of ``a`` and ``b``.
    """

    ids: tuple[str, ...]
    other_ids: tuple[str, ...]
    mean_a: Float[Tensor, "layer head_index"]
    mean_b: Float[Tensor, "layer head_index"]
    diff: Float[Tensor, "layer head_index"]
    ci_low: Float[Tensor, "layer head_index"]
    ci_high: Float[Tensor, "layer head_index"]
    p_value: Float[Tensor, "layer head_index"]
    layers: tuple[int, ...] = ()
    n_a: int = 0
    n_b: int = 0
    paired: bool = True
    feature: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    per_example: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        self.ids, self.other_ids = tuple(self.ids), tuple(self.other_ids)
        if not self.layers:
            self.layers = tuple(range(self.diff.shape[0]))

    def top(self, k: int = 10, *, absolute: bool = True) -> Ranking:
        """The ``k`` heads with the largest ``|diff|`` (``absolute=False``: largest
        ``diff``) as ``HeadRank(layer, head, diff)`` records."""
        return top_heads(self.diff, k, self.layers, absolute=absolute)

    def significant(self, alpha: float = 0.05) -> list[tuple[int, int]]:
        """``(layer, head)`` of the heads with ``p_value < alpha``, in layer/head order."""
        cells = (self.p_value < alpha).nonzero().tolist()
        return [(self.layers[i], h) for i, h in cells]

    def to_dataframe(self) -> Any:
        """One row per head: ``layer, head, n_a, n_b, mean_a, mean_b, diff, ci_low,
        ci_high, p_value``, sorted by layer and head."""
        import pandas as pd

        n_layers, n_heads = self.diff.shape
        return pd.DataFrame(
            {
                "layer": torch.tensor(self.layers).repeat_interleave(n_heads).numpy(),
                "head": torch.arange(n_heads).repeat(n_layers).numpy(),
                "n_a": self.n_a,
                "n_b": self.n_b,
                **{
                    name: getattr(self, name).double().reshape(-1).numpy()
                    for name in ("mean_a", "mean_b", "diff", "ci_low", "ci_high", "p_value")
                },
            }
        )

    def plot(self, *, alpha: float = 0.05, **kwargs: Any) -> Any:
        """Diverging layer x head heatmap of ``diff``, ``*`` where ``p_value < alpha``
        (:func:`idiomlens.viz.heads.plot_comparison`)."""
        from ..viz.heads import plot_comparison

        return plot_comparison(self, alpha=alpha, **kwargs)


def compare_scores(
    a: HeadScores,
    b: HeadScores,
    *,
    paired: bool = True,
    pair_key: Callable[[str], str] | Mapping[str, str] | None = None,
    feature: str | None = None,
    n_boot: int = 1000,
    n_perm: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> ScoreComparison:
    """Per-head comparison of ``a`` and ``b`` (same layers and heads).

    Args:
        a, b: scores to compare (``diff = a - b``).
        paired: match examples (see the module docstring) or treat them as independent.
        pair_key: callable id -> key, or a mapping ``a_id -> b_id`` (paired only).
        feature: compare one feature instead of the combined score.
        n_boot, n_perm: number of bootstrap / permutation resamples.
        ci: confidence level of the percentile bootstrap interval.
        seed: seed of the local generator.

    Returns:
        A :class:`ScoreComparison`; ``.to_dataframe()`` has one row per head: ``layer,
        head, n_a, n_b, mean_a, mean_b, diff, ci_low, ci_high, p_value``.

    >>> import torch
    >>> gen = torch.Generator().manual_seed(0)
    >>> a = HeadScores(ids=("x", "y", "z"), features=torch.zeros(3, 1, 2, 5),
    ...                scores=torch.rand(3, 1, 2, generator=gen))
    >>> cmp = compare_scores(a, a, n_boot=20, n_perm=20)
    >>> cmp.diff.abs().max().item(), list(cmp.to_dataframe().columns)[:3]
    (0.0, ['layer', 'head', 'n_a'])
    """
    if a.scores.shape[1:] != b.scores.shape[1:] or a.layers != b.layers:
        raise ValueError("a and b must cover the same layers and heads")
    if not 0 < ci < 1 or n_boot < 1 or n_perm < 1:
        raise ValueError("need 0 < ci < 1, n_boot >= 1 and n_perm >= 1")
    gen = torch.Generator().manual_seed(seed)
    n_layers, n_heads = a.scores.shape[1:]
    if paired:
        va, vb, pairs = paired_values(a, b, pair_key, feature)
        d = (va - vb).double().reshape(len(va), -1)  # [pair, layer * head]
        n = len(d)
        observed = d.mean(0)
        boot = _weighted_means(lambda r: _bootstrap_weights(gen, n, r), d, n_boot)
        null = _weighted_means(lambda r: _sign_weights(gen, n, r), d, n_perm)
        n_a = n_b = n
        mean_a, mean_b = va.double().mean(0).reshape(-1), vb.double().mean(0).reshape(-1)
        ids, other_ids = tuple(i for i, _ in pairs), tuple(j for _, j in pairs)
    else:
        xa = a._values(feature).double().reshape(len(a), -1)
        xb = b._values(feature).double().reshape(len(b), -1)
        n_a, n_b = len(xa), len(xb)
        ids, other_ids = a.ids, b.ids
        mean_a, mean_b = xa.mean(0), xb.mean(0)
        observed = mean_a - mean_b
        boot = _weighted_means(lambda r: _bootstrap_weights(gen, n_a, r), xa, n_boot) - (
            _weighted_means(lambda r: _bootstrap_weights(gen, n_b, r), xb, n_boot)
        )
        pooled = torch.cat([xa, xb])
        null = _weighted_means(lambda r: _label_weights(gen, n_a, n_b, r), pooled, n_perm)
    alpha = (1 - ci) / 2
    lo, hi = torch.quantile(boot, torch.tensor([alpha, 1 - alpha], dtype=boot.dtype), dim=0)
    extreme = (null.abs() >= observed.abs()[None] - 1e-12).sum(0)
    p_value = (1 + extreme) / (1 + n_perm)
    grid = (n_layers, n_heads)
    return ScoreComparison(
        ids=ids,
        other_ids=other_ids,
        mean_a=mean_a.reshape(grid),
        mean_b=mean_b.reshape(grid),
        diff=observed.reshape(grid),
        ci_low=lo.reshape(grid),
        ci_high=hi.reshape(grid),
        p_value=p_value.double().reshape(grid),
        layers=a.layers,
        n_a=n_a,
        n_b=n_b,
        paired=paired,
        feature=feature,
        meta={
            "n_boot": n_boot,
            "n_perm": n_perm,
            "ci": ci,
            "seed": seed,
            "a": dict(a.meta),
            "b": dict(b.meta),
        },
    )


def _sign_weights(gen: torch.Generator, n: int, rows: int) -> Tensor:
    """Rows of random ``+-1/n`` weights: a sign-flip of every pair difference."""
    return (torch.randint(0, 2, (rows, n), generator=gen) * 2 - 1).double() / n


def _label_weights(gen: torch.Generator, n_a: int, n_b: int, rows: int) -> Tensor:
    """Rows of ``+1/n_a`` (permuted group a) and ``-1/n_b`` (group b) weights."""
    perm = torch.rand(rows, n_a + n_b, generator=gen).argsort(-1)
    in_a = perm < n_a
    return torch.where(in_a, 1.0 / n_a, -1.0 / n_b).double()
