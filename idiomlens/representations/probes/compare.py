"""Probes under two conditions (base vs fine-tuned) or along a list of checkpoints.

A difference of accuracies ``b - a`` gets a percentile bootstrap CI over test examples
(METHODS.md "Probes"). When both results hold the same test rows (the same
representations' split) the bootstrap is paired: one resample of examples is applied to
both. Otherwise each side is resampled on its own. Token rows are resampled by example
(``test_group``), since the tokens of one sentence are not independent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from ..._io import Result
from .result import ProbeResult

__all__ = ["ProbeComparison", "ProbeProfile", "compare_probes", "probe_profile", "bootstrap_diff"]


def _group_sums(result: ProbeResult, layers: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Correct counts ``[layer, group]`` and rows per group ``[group]`` of the test rows."""
    pos = torch.tensor([result.layer_position(x) for x in layers])
    correct = result.correct()[pos].double()  # [layer, test]
    _, group = torch.unique(result.test_group, return_inverse=True)
    n = int(group.max()) + 1
    sums = torch.zeros(len(layers), n, dtype=torch.float64).index_add_(1, group, correct)
    counts = torch.zeros(n, dtype=torch.float64).index_add_(0, group, torch.ones_like(correct[0]))
    return sums, counts


def _resampled_accuracy(sums: Tensor, counts: Tensor, weights: Tensor) -> Tensor:
    """Accuracy ``[boot, layer]`` under group multiplicities ``weights [boot, group]``."""
    return (weights @ sums.T) / (weights @ counts)[:, None]


def _multiplicities(n: int, n_boot: int, gen: torch.Generator) -> Tensor:
    draws = torch.randint(0, n, (n_boot, n), generator=gen)
    return torch.zeros(n_boot, n, dtype=torch.float64).scatter_add_(
        1, draws, torch.ones(n_boot, n, dtype=torch.float64)
    )


def bootstrap_diff(
    a: ProbeResult, b: ProbeResult, layers: Sequence[int], *, n_boot: int, ci: float, seed: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, bool]:
    """``(diff, low, high, p_value, paired)`` of ``accuracy(b) - accuracy(a)`` per layer.

    ``p_value`` is the two-sided bootstrap p-value of "no difference": twice the smaller
    fraction of resampled differences on either side of 0 (with the +1 correction).
    """
    gen = torch.Generator().manual_seed(seed)
    sa, ca = _group_sums(a, layers)
    sb, cb = _group_sums(b, layers)
    paired = a.ids == b.ids
    wa = _multiplicities(len(ca), n_boot, gen)
    wb = wa if paired else _multiplicities(len(cb), n_boot, gen)
    boot = _resampled_accuracy(sb, cb, wb) - _resampled_accuracy(sa, ca, wa)  # [boot, layer]
    diff = sb.sum(1) / cb.sum() - sa.sum(1) / ca.sum()
    alpha = (1.0 - ci) / 2.0
    low = torch.quantile(boot, alpha, dim=0)
    high = torch.quantile(boot, 1.0 - alpha, dim=0)
    side = torch.minimum((boot <= 0).sum(0), (boot >= 0).sum(0)).double()
    p = torch.clamp(2.0 * (side + 1.0) / (n_boot + 1.0), max=1.0)
    return diff, low, high, p, paired


def _shared_layers(results: Sequence[ProbeResult]) -> tuple[int, ...]:
    layers = [x for x in results[0].layers if all(x in r.layers for r in results[1:])]
    if not layers:
        raise ValueError(f"the probe results share no layer: {[r.layers for r in results]}")
    return tuple(layers)


@dataclass(kw_only=True)
class ProbeComparison(Result):
    """Per-layer probe accuracy of two conditions and ``b - a`` with a bootstrap CI."""

    layers: tuple[int, ...]
    names: tuple[str, str]
    ids: tuple[str, ...]
    accuracy_a: Float[Tensor, " layer"]
    accuracy_b: Float[Tensor, " layer"]
    control_a: Float[Tensor, " layer"]
    control_b: Float[Tensor, " layer"]
    diff: Float[Tensor, " layer"]
    ci_low: Float[Tensor, " layer"]
    ci_high: Float[Tensor, " layer"]
    p_value: Float[Tensor, " layer"]
    paired: bool
    n_boot: int
    ci: float
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dataframe(self) -> Any:
        """One row per layer: both accuracies, controls, selectivities, ``diff`` and CI."""
        import pandas as pd

        a, b = self.names
        return pd.DataFrame(
            {
                "layer": list(self.layers),
                f"accuracy_{a}": self.accuracy_a.tolist(),
                f"accuracy_{b}": self.accuracy_b.tolist(),
                f"control_{a}": self.control_a.tolist(),
                f"control_{b}": self.control_b.tolist(),
                f"selectivity_{a}": (self.accuracy_a - self.control_a).tolist(),
                f"selectivity_{b}": (self.accuracy_b - self.control_b).tolist(),
                "diff": self.diff.tolist(),
                "ci_low": self.ci_low.tolist(),
                "ci_high": self.ci_high.tolist(),
                "p_value": self.p_value.tolist(),
            }
        )

    def plot(self, **kwargs: Any) -> Any:
        """Both accuracy curves, and the difference with its CI band."""
        from ...viz.probes import plot_probe_comparison

        return plot_probe_comparison(self, **kwargs)


def compare_probes(
    a: ProbeResult,
    b: ProbeResult,
    *,
    names: tuple[str, str] = ("a", "b"),
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> ProbeComparison:
    """Compare two probe results layer by layer (e.g. base ``a`` vs fine-tuned ``b``).

    Returns ``diff = accuracy(b) - accuracy(a)`` per shared layer with a ``ci`` percentile
    bootstrap interval over test examples (paired when both have the same test rows).

    >>> import torch
    >>> from idiomlens.representations import Representations
    >>> from idiomlens.representations.probes import train_probes
    >>> g = torch.Generator().manual_seed(0)
    >>> y = torch.arange(120) % 2
    >>> base = Representations.from_tensors({0: torch.randn(120, 4, generator=g)}, labels=y.tolist())
    >>> tuned = Representations.from_tensors({0: torch.randn(120, 4, generator=g) + 2.0 * y[:, None]},
    ...                                      labels=y.tolist())
    >>> cmp = compare_probes(train_probes(base, progress=False), train_probes(tuned, progress=False))
    >>> cmp.paired, bool(cmp.ci_low[0] > 0)
    (True, True)
    """
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be between 0 and 1, got {ci}")
    layers = _shared_layers([a, b])
    diff, low, high, p, paired = bootstrap_diff(a, b, layers, n_boot=n_boot, ci=ci, seed=seed)
    pos_a = [a.layer_position(x) for x in layers]
    pos_b = [b.layer_position(x) for x in layers]
    return ProbeComparison(
        layers=layers,
        names=(str(names[0]), str(names[1])),
        ids=a.ids if paired else (),
        accuracy_a=a.accuracy[pos_a],
        accuracy_b=b.accuracy[pos_b],
        control_a=a.control_accuracy[pos_a],
        control_b=b.control_accuracy[pos_b],
        diff=diff,
        ci_low=low,
        ci_high=high,
        p_value=p,
        paired=paired,
        n_boot=n_boot,
        ci=ci,
        meta={"a": a.meta, "b": b.meta, "seed": seed},
    )


@dataclass(kw_only=True)
class ProbeProfile(Result):
    """Probe accuracy across checkpoints ``[checkpoint, layer]``, with the change from the
    reference checkpoint and its bootstrap CI."""

    names: tuple[str, ...]
    steps: tuple[Any, ...]
    layers: tuple[int, ...]
    ids: tuple[str, ...]
    accuracy: Float[Tensor, "checkpoint layer"]
    control_accuracy: Float[Tensor, "checkpoint layer"]
    diff: Float[Tensor, "checkpoint layer"]
    ci_low: Float[Tensor, "checkpoint layer"]
    ci_high: Float[Tensor, "checkpoint layer"]
    reference: int
    ci: float
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def selectivity(self) -> Float[Tensor, "checkpoint layer"]:
        return self.accuracy - self.control_accuracy

    def to_dataframe(self) -> Any:
        """Long format: one row per checkpoint and layer."""
        import pandas as pd

        rows = []
        for i, (name, step) in enumerate(zip(self.names, self.steps, strict=True)):
            for j, layer in enumerate(self.layers):
                rows.append({
                    "checkpoint": name, "step": step, "layer": layer,
                    "accuracy": float(self.accuracy[i, j]),
                    "control_accuracy": float(self.control_accuracy[i, j]),
                    "selectivity": float(self.selectivity[i, j]),
                    "diff": float(self.diff[i, j]), "ci_low": float(self.ci_low[i, j]),
                    "ci_high": float(self.ci_high[i, j]),
                })  # fmt: skip
        return pd.DataFrame(rows)

    def plot(self, **kwargs: Any) -> Any:
        """One accuracy-vs-layer curve per checkpoint (or ``kind="heatmap"``)."""
        from ...viz.probes import plot_probe_profile

        return plot_probe_profile(self, **kwargs)


def probe_profile(
    results: Sequence[ProbeResult] | Mapping[str, ProbeResult],
    *,
    steps: Sequence[Any] | None = None,
    reference: int = 0,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> ProbeProfile:
    """Probe profiles along checkpoints (``{name: result}`` or a list, in training order).

    ``diff[i] = accuracy[i] - accuracy[reference]`` with a bootstrap CI, as in
    :func:`compare_probes`. ``steps`` label the x axis (default ``0, 1, ...``).
    """
    if isinstance(results, Mapping):
        names, items = tuple(str(k) for k in results), list(results.values())
    else:
        items = list(results)
        names = tuple(f"checkpoint {i}" for i in range(len(items)))
    if len(items) < 2:
        raise ValueError("a probe profile needs at least two results")
    if not 0 <= reference < len(items):
        raise ValueError(f"reference {reference} is not one of the {len(items)} results")
    steps = tuple(range(len(items))) if steps is None else tuple(steps)
    if len(steps) != len(items):
        raise ValueError(f"{len(steps)} steps for {len(items)} results")
    layers = _shared_layers(items)
    ref = items[reference]
    parts = [bootstrap_diff(ref, r, layers, n_boot=n_boot, ci=ci, seed=seed)[:3] for r in items]
    pos = [[r.layer_position(x) for x in layers] for r in items]
    return ProbeProfile(
        names=names,
        steps=steps,
        layers=layers,
        ids=ref.ids,
        accuracy=torch.stack([r.accuracy[p] for r, p in zip(items, pos, strict=True)]),
        control_accuracy=torch.stack(
            [r.control_accuracy[p] for r, p in zip(items, pos, strict=True)]
        ),
        diff=torch.stack([d for d, _, _ in parts]),
        ci_low=torch.stack([lo for _, lo, _ in parts]),
        ci_high=torch.stack([hi for _, _, hi in parts]),
        reference=reference,
        ci=ci,
        meta={"n_boot": n_boot, "seed": seed},
    )
