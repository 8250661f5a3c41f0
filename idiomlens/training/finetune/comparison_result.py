"""``CheckpointComparison``: per-unit statistics of checkpoints against their base.

>>> import torch
>>> c = CheckpointComparison(
...     steps=(0, 10), labels=("checkpoint-0", "checkpoint-10"), units=("L0H0", "L0H1"),
...     stat=torch.tensor([[0.0, 0.0], [0.2, -0.1]]), ci_low=torch.tensor([[0.0, 0.0], [0.1, -0.2]]),
...     ci_high=torch.tensor([[0.0, 0.0], [0.3, 0.0]]), n=torch.full((2, 2), 4),
...     level=torch.tensor([[0.5, 0.7], [0.5, 0.7], [0.7, 0.6]]))
>>> c.top(1)
['L0H1']
>>> row = c.to_dataframe().loc[3]
>>> row["unit"], round(float(row["diff"]), 3)
('L0H1', -0.1)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from idiomlens._io import Result

__all__ = ["CheckpointComparison"]


@dataclass
class CheckpointComparison(Result):
    """An analysis on a base model and its checkpoints, compared per unit (head or layer).

    Attributes:
        steps: the optimizer step of each checkpoint (``checkpoint`` axis).
        labels: each checkpoint's name (its folder name).
        units: unit labels (``"L3H1"`` for heads, ``"L3"`` for layers).
        stat: ``[checkpoint, unit]`` mean over examples of the paired statistic
            (``checkpoint - base`` unless the comparison defines its own).
        ci_low, ci_high: ``[checkpoint, unit]`` percentile bootstrap CI over examples.
        n: ``[checkpoint, unit]`` examples that entered each mean (NaN values skipped).
        level: ``[model, unit]`` mean level of the base (row 0) and every checkpoint
            (rows 1..); NaN when the comparison has no per-model level.
        axes: unit axes, e.g. ``("layer", "head")``.
        comparison, statistic: the registry name and the statistic's name.
        meta: analysis and parameters, the base and checkpoint sources, the run
            folders, bootstrap settings.
    """

    steps: tuple[int, ...]
    labels: tuple[str, ...]
    units: tuple[str, ...]
    stat: Float[Tensor, "checkpoint unit"]
    ci_low: Float[Tensor, "checkpoint unit"]
    ci_high: Float[Tensor, "checkpoint unit"]
    n: Int[Tensor, "checkpoint unit"]
    level: Float[Tensor, "model unit"]
    axes: tuple[str, ...] = ("layer", "head")
    comparison: str = "score"
    statistic: str = "diff"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ids(self) -> tuple[str, ...]:
        """Checkpoint labels (the result is per checkpoint, not per example)."""
        return self.labels

    def top(self, k: int = 5, *, by: str = "base") -> list[str]:
        """``k`` units: the base's highest levels (``by="base"``) or the largest
        ``|stat|`` at the last checkpoint (``by="change"``)."""
        if by == "base" and not torch.isnan(self.level[0]).all():
            key = torch.nan_to_num(self.level[0], nan=-float("inf"))
        elif by in ("base", "change"):
            key = torch.nan_to_num(self.stat[-1].abs(), nan=-float("inf"))
        else:
            raise ValueError(f"by must be 'base' or 'change', got {by!r}")
        order = torch.sort(key, descending=True, stable=True).indices[:k]
        return [self.units[i] for i in order.tolist()]

    def to_dataframe(self) -> Any:
        """One row per (checkpoint, unit): ``step, checkpoint, unit, base, value,
        <statistic>, ci_low, ci_high, n``."""
        import pandas as pd

        n_ckpt, n_units = self.stat.shape
        rows = {
            "step": [s for s in self.steps for _ in range(n_units)],
            "checkpoint": [c for c in self.labels for _ in range(n_units)],
            "unit": list(self.units) * n_ckpt,
            "base": self.level[0].repeat(n_ckpt).tolist(),
            "value": self.level[1:].reshape(-1).tolist(),
            self.statistic: self.stat.reshape(-1).tolist(),
            "ci_low": self.ci_low.reshape(-1).tolist(),
            "ci_high": self.ci_high.reshape(-1).tolist(),
            "n": self.n.reshape(-1).tolist(),
        }
        return pd.DataFrame(rows)

    def plot(self, k: int = 5, *, units: list[str] | None = None, show: str = "auto") -> Any:
        """Lines across checkpoint steps for ``units`` (default: :meth:`top` ``(k)``).

        ``show="level"`` plots each unit's mean level (the base as step 0's reference,
        dotted); ``"stat"`` plots the statistic with its CI band; ``"auto"`` picks level
        when the comparison has levels.
        """
        import plotly.graph_objects as go

        chosen = units or self.top(k)
        has_level = not torch.isnan(self.level[1:]).all()
        mode = ("level" if has_level else "stat") if show == "auto" else show
        fig = go.Figure()
        for unit in chosen:
            j = self.units.index(unit)
            if mode == "level":
                fig.add_trace(
                    go.Scatter(
                        x=list(self.steps),
                        y=self.level[1:, j].tolist(),
                        mode="lines+markers",
                        name=unit,
                    )
                )
                continue
            band = self.ci_high[:, j].tolist() + self.ci_low[:, j].flip(0).tolist()
            fig.add_trace(
                go.Scatter(
                    x=list(self.steps) + list(self.steps)[::-1],
                    y=band,
                    fill="toself",
                    opacity=0.2,
                    line={"width": 0},
                    showlegend=False,
                    hoverinfo="skip",
                    name=unit,
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=list(self.steps), y=self.stat[:, j].tolist(), mode="lines+markers", name=unit
                )
            )
        what = self.comparison if mode == "level" else f"{self.comparison} {self.statistic} vs base"
        fig.update_layout(title=f"{what} across checkpoints", xaxis_title="step", yaxis_title=what)
        if any(s > 0 for s in self.steps) and min(self.steps) >= 0:
            fig.update_xaxes(type="log" if min(self.steps) > 0 else "linear")
        return fig

    @classmethod
    def concat(cls, parts: list[CheckpointComparison]) -> CheckpointComparison:
        raise TypeError("checkpoint comparisons are not per-example results")
