"""Plotly figures for idiom awareness.

>>> import torch
>>> from idiomlens.interventions import AwarenessResult
>>> r = AwarenessResult(ids=("a", "b"), splits=("fig", "lit"), split_index=torch.tensor([0, 1]),
...     loss=torch.tensor([2.0, 3.0]), nwp_correct=torch.tensor([True, False]),
...     logprob=torch.tensor([-1.0, -2.0]))
>>> plot_awareness(r).data[0].y
(1.0, 0.0)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go

if TYPE_CHECKING:
    from ..interventions import AwarenessResult

__all__ = ["plot_awareness"]

_METRICS = ("accuracy", "mean_loss")


def plot_awareness(
    result: AwarenessResult, *, metric: str = "accuracy", title: str | None = None
) -> go.Figure:
    """One bar per split: greedy last-idiom-word ``accuracy`` or ``mean_loss`` (nats/token).

    Each bar's hover text gives the number of examples in the split.
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    summary = result.summary()
    fig = go.Figure(
        go.Bar(
            x=list(summary["split"]),
            y=list(summary[metric]),
            customdata=list(summary["n"]),
            hovertemplate="%{x}: %{y:.4f} (n=%{customdata})<extra></extra>",
            name=metric,
        )
    )
    fig.update_layout(
        title=title or f"Idiom awareness: {metric} per split",
        xaxis_title="split",
        yaxis_title=metric,
    )
    return fig
