"""Plotly figures for head ablation.

>>> import torch
>>> from idiomlens.interventions import AblationResult
>>> z = torch.zeros(2, 3)
>>> r = AblationResult(ids=("a", "b"), conditions=("L0H0", "L0H1", "L1H0"),
...     head_masks=torch.zeros(3, 2, 2, dtype=torch.bool),
...     logit_diff=z, logprob_diff=z, loss_diff=z, nwp_correct=z.bool(),
...     rank=z.long(), clean_logit=z[:, 0], clean_logprob=z[:, 0], clean_loss=z[:, 0],
...     clean_nwp_correct=z[:, 0].bool(), clean_rank=z[:, 0].long(),
...     n_word_tokens=z[:, 0].long() + 1)
>>> plot_ablation(r).data[0].type
'bar'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go

if TYPE_CHECKING:
    from ..interventions import AblationResult

__all__ = ["plot_ablation"]

_METRICS = ("logit_diff", "logprob_diff", "loss_diff", "accuracy", "accuracy_drop", "mean_rank")


def plot_ablation(
    result: AblationResult, *, metric: str = "logit_diff", title: str | None = None
) -> go.Figure:
    """One bar per condition (given order): the mean of ``metric`` over examples.

    ``metric`` is a column of :meth:`AblationResult.summary`: ``logit_diff``,
    ``logprob_diff``, ``loss_diff``, ``accuracy``, ``accuracy_drop`` or ``mean_rank``.
    Diff metrics get their standard error as error bars.
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    summary = result.summary()
    error = None
    if metric.endswith("_diff"):
        values = getattr(result, metric).float()
        n = values.shape[0]
        sem = values.std(0) / n**0.5 if n > 1 else values.new_zeros(values.shape[1])
        error = {"type": "data", "array": sem.tolist()}
    fig = go.Figure(
        go.Bar(x=list(summary["condition"]), y=list(summary[metric]), error_y=error, name=metric)
    )
    fig.update_layout(
        title=title
        or f"{result.kind} ablation at {result.positions} positions, {len(result)} examples",
        xaxis_title="condition",
        yaxis_title=metric,
    )
    return fig
