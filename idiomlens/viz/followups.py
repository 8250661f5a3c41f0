"""Figures for the follow-up analyses: logit lens, word replacement, pattern similarity and
the by-layer (heads vs MLP) direct logit attribution."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

__all__ = ["plot_logit_lens", "plot_replacement", "plot_pattern_similarity", "plot_dla_by_layer"]


def plot_logit_lens(result: Any, *, title: str | None = None) -> go.Figure:
    """Mean probability (and top-1 rate) of the last idiom word's first token per depth."""
    s = result.summary()
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=s["stage"], y=s["prob"], mode="lines+markers", name="P(t_1)"))
    fig.add_trace(go.Scatter(x=s["stage"], y=s["top1"], mode="lines+markers", name="top-1"))
    fig.update_layout(
        title=title or f"Logit lens of the last idiom word ({len(result.ids)} sentences)",
        xaxis_title="residual stream after",
        yaxis_title="mean over sentences",
        yaxis_range=[0, 1],
    )
    return fig


def plot_replacement(results: Sequence[Any], *, title: str | None = None) -> go.Figure:
    """Box plots of loss, logit difference and final-residual cosine per replacement kind."""
    from plotly.subplots import make_subplots

    metrics = ("loss_diff", "logit_diff", "cosine")
    fig = make_subplots(rows=1, cols=3, subplot_titles=metrics)
    for res in results:
        for col, m in enumerate(metrics, start=1):
            fig.add_trace(
                go.Box(y=getattr(res, m).tolist(), name=res.replacement, showlegend=col == 1),
                row=1,
                col=col,
            )
    fig.update_layout(title=title or "Replacing the last idiom word")
    return fig


def plot_pattern_similarity(result: Any, *, title: str | None = None) -> go.Figure:
    """Layer x head heatmap of the mean pattern cosine over pairs."""
    mean = result.mean()
    fig = go.Figure(
        go.Heatmap(
            z=mean.tolist(),
            x=[f"H{h}" for h in range(mean.shape[1])],
            y=[f"L{la}" for la in range(mean.shape[0])],
            colorscale="Viridis",
            zmin=0,
            zmax=1,
            colorbar={"title": "cosine"},
        )
    )
    fig.update_layout(
        title=title
        or f"Attention-pattern cosine, figurative vs {result.mode} ({len(result.ids)} pairs)",
        xaxis_title="head",
        yaxis_title="layer",
    )
    return fig


def plot_dla_by_layer(dla: Any, group: str | None = None, *, title: str | None = None) -> go.Figure:
    """Per layer: summed head attribution beside the MLP's (grouped bars)."""
    from ..attribution.by_layer import dla_by_layer

    table = dla_by_layer(dla, group)
    x = [f"L{la}" for la in table["layer"]]
    fig = go.Figure(
        [
            go.Bar(x=x, y=table["heads"], name="attention heads (sum)"),
            go.Bar(x=x, y=table["mlp"], name="MLP"),
            go.Bar(x=x, y=table["top_head_value"], name="top head", text=table["top_head"]),
        ]
    )
    fig.update_layout(
        barmode="group",
        title=title or f"Direct logit attribution by layer ({table.attrs['group']} targets)",
        xaxis_title="layer",
        yaxis_title="mean attribution (logit)",
    )
    return fig
