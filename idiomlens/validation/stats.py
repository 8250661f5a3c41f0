"""Pure statistics of a head validation (METHODS.md, "Validating a head ranking").

Every function is tensor-in / number-out and deterministic (bootstrap resampling uses
a local ``torch.Generator``). "Stronger" always means a larger effect: every metric of
:data:`METRICS` is signed so that a positive value means the ablated heads supported
the last idiom word.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from ..scoring.combine import average_ranks

__all__ = [
    "METRICS",
    "metric_values",
    "empirical_p_value",
    "bootstrap_ci",
    "spearman",
    "precision_at_k",
    "TIE_RTOL",
]

#: Controls within this relative distance of the top-k effect count as "at least as
#: strong" (float rounding must not turn a tie into a significant result).
TIE_RTOL = 1e-6


def _accuracy_drop(res: Any) -> Tensor:
    return res.clean_nwp_correct.float()[:, None] - res.nwp_correct.float()


#: ``metric -> fn(AblationResult) -> [example, condition]`` per-example effect, larger =
#: stronger. Means over examples: ``logit_diff`` / ``logprob_diff`` (clean - ablated),
#: ``loss_diff`` (ablated - clean), ``accuracy_drop`` (clean - ablated greedy accuracy of
#: the last idiom word).
METRICS: dict[str, Callable[[Any], Tensor]] = {
    "logit_diff": lambda r: r.logit_diff.float(),
    "logprob_diff": lambda r: r.logprob_diff.float(),
    "loss_diff": lambda r: r.loss_diff.float(),
    "accuracy_drop": _accuracy_drop,
}


def metric_values(ablation: Any, metric: str) -> Float[Tensor, "example condition"]:
    """Per-example effects of every condition of an ``AblationResult`` under ``metric``."""
    try:
        fn = METRICS[metric]
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(METRICS)}") from None
    return fn(ablation)


def empirical_p_value(effect: float, control_effects: Float[Tensor, " control"]) -> float:
    """``(1 + #{controls at least as strong}) / (1 + #controls)`` (Phipson & Smyth 2010).

    A control is at least as strong when ``c >= effect - TIE_RTOL * max(1, |effect|)``.

    >>> empirical_p_value(2.0, torch.tensor([0.0, 1.0, 3.0]))
    0.5
    """
    n = control_effects.numel()
    if n == 0:
        raise ValueError("the p-value needs at least one control")
    tol = TIE_RTOL * max(1.0, abs(float(effect)))
    hits = int((control_effects.double() >= float(effect) - tol).sum())
    return (1 + hits) / (1 + n)


def bootstrap_ci(
    values: Float[Tensor, " example"], *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (examples resampled with replacement).

    Resampling indices come from ``torch.Generator(seed)``; quantiles interpolate
    linearly (``torch.quantile``). A single example gives ``(v, v)``.

    >>> bootstrap_ci(torch.tensor([1.0, 1.0, 1.0]))
    (1.0, 1.0)
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n = values.numel()
    if n == 0:
        raise ValueError("the bootstrap needs at least one example")
    v = values.double().reshape(-1)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n, (n_boot, n), generator=gen)
    means = v[idx].mean(1)
    alpha = (1 - level) / 2
    lo, hi = torch.quantile(means, torch.tensor([alpha, 1 - alpha], dtype=torch.float64))
    return float(lo), float(hi)


def spearman(x: Float[Tensor, " n"], y: Float[Tensor, " n"]) -> float:
    """Spearman's rank correlation (average ranks for ties), as ``scipy.stats.spearmanr``.

    ``NaN`` when fewer than two points or either side is constant.

    >>> spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 30.0, 20.0]))
    0.5
    """
    x, y = x.reshape(-1), y.reshape(-1)
    if x.numel() != y.numel():
        raise ValueError(f"spearman: {x.numel()} scores but {y.numel()} effects")
    if x.numel() < 2:
        return float("nan")
    rx, ry = average_ranks(x.double()), average_ranks(y.double())
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = (rx.square().sum() * ry.square().sum()).sqrt()
    if float(denom) == 0:
        return float("nan")
    return round(float((rx * ry).sum() / denom), 12)


def precision_at_k(top: Sequence[tuple[int, int]], true_heads: Sequence[tuple[int, int]]) -> float:
    """Fraction of the ``top`` heads that are in ``true_heads``.

    >>> precision_at_k([(0, 0), (1, 1)], [(0, 0), (0, 1)])
    0.5
    """
    if not top:
        raise ValueError("precision@k needs k >= 1 heads")
    truth = {(int(a), int(b)) for a, b in true_heads}
    return sum((int(a), int(b)) in truth for a, b in top) / len(top)
