"""Plotly figures for head scores, head detection and score comparisons.

>>> import torch
>>> from idiomlens.scoring import HeadScores
>>> s = HeadScores(ids=("a",), features=torch.zeros(1, 2, 3, 5), scores=torch.full((1, 2, 3), 0.5))
>>> plot_head_scores(s).data[0].type
'heatmap'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from .._heads import head_label

if TYPE_CHECKING:
    from ..scoring import HeadDetection, HeadScores

__all__ = ["plot_head_scores", "plot_score_scatter", "plot_comparison", "plot_detection"]


def _heatmap(
    values: Any, layers: tuple[int, ...], title: str, colorbar: str, **kw: Any
) -> go.Figure:
    n_heads = values.shape[1]
    fig = go.Figure(
        go.Heatmap(
            z=values.tolist(),
            x=list(range(n_heads)),
            y=list(layers),
            colorbar={"title": colorbar},
            hovertemplate="L%{y}H%{x}: %{z:.4f}<extra></extra>",
            **kw,
        )
    )
    fig.update_layout(title=title, xaxis_title="head", yaxis_title="layer")
    fig.update_yaxes(autorange="reversed", dtick=1)
    fig.update_xaxes(dtick=1)
    return fig


def plot_head_scores(
    scores: HeadScores, *, feature: str | None = None, title: str | None = None
) -> go.Figure:
    """Layer x head heatmap of the mean combined score (or of one ``feature``)."""
    what = feature or "score"
    default = f"Mean {scores.kind} {what} over {len(scores)} examples"
    return _heatmap(
        scores.mean(feature), scores.layers, title or default, what, colorscale="Viridis"
    )


def plot_score_scatter(
    idiom: HeadScores, literal: HeadScores, *, title: str | None = None
) -> go.Figure:
    """One point per head: mean score of ``idiom`` (x) against ``literal`` (y)."""
    x, y = idiom.mean().flatten().tolist(), literal.mean().flatten().tolist()
    n_heads = idiom.scores.shape[2]
    labels = [head_label(layer, h) for layer in idiom.layers for h in range(n_heads)]
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=y,
            mode="markers+text" if len(labels) <= 64 else "markers",  # label small models
            text=labels,
            textposition="top center",
            hovertemplate="%{text}: (%{x:.3f}, %{y:.3f})<extra></extra>",
        )
    )
    lo, hi = min(x + y), max(x + y)
    fig.add_shape(type="line", x0=lo, y0=lo, x1=hi, y1=hi, line={"dash": "dot", "color": "grey"})
    fig.update_layout(
        title=title or "Per-head mean scores",
        xaxis_title=f"{idiom.kind} score",
        yaxis_title=f"{literal.kind} score",
    )
    return fig


def plot_comparison(comparison: Any, *, alpha: float = 0.05, title: str | None = None) -> go.Figure:
    """Heatmap of ``diff`` from :func:`~idiomlens.compare_scores` (its result, or that
    result's ``to_dataframe()``); heads with ``p_value < alpha`` are marked with ``*``."""
    df = comparison.to_dataframe() if hasattr(comparison, "to_dataframe") else comparison
    table = df.pivot(index="layer", columns="head", values="diff")
    pvals = df.pivot(index="layer", columns="head", values="p_value")
    text = [["*" if p < alpha else "" for p in row] for row in pvals.to_numpy()]
    bound = float(abs(table.to_numpy()).max()) or 1.0
    return _heatmap(
        table.to_numpy(),
        tuple(table.index),
        title or f"Mean difference (* p < {alpha})",
        "diff",
        colorscale="RdBu",
        zmid=0,
        zmin=-bound,
        zmax=bound,
        text=text,
        texttemplate="%{text}",
    )


def plot_detection(det: HeadDetection, *, title: str | None = None) -> go.Figure:
    """Layer x head heatmap of a :class:`~idiomlens.HeadDetection`'s mean score."""
    return _heatmap(
        det.mean(),
        det.layers,
        title or f"{det.pattern} score",
        "score",
        colorscale="Viridis",
        zmin=0,
        zmax=1,
    )
