"""Plotly figures for direct logit attribution.

>>> import torch
>>> from idiomlens.attribution import DLAResult
>>> r = DLAResult(ids=("a",), labels=("embed", "L0H0", "L0H1", "bias"),
...               groups=("idiom", "literal"), attributions=torch.ones(1, 4, 2),
...               logits=torch.ones(1, 2), unembed_bias=torch.zeros(1, 2),
...               counts=torch.ones(1, 2, dtype=torch.long), n_layers=1, n_heads=2)
>>> [t.name for t in plot_dla(r).data]
['idiom', 'literal']
>>> plot_dla(r, kind="heads", group="literal").data[0].type
'heatmap'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go

if TYPE_CHECKING:
    from ..attribution import DLAResult

__all__ = ["plot_dla"]


def plot_dla(
    result: DLAResult, *, group: str | None = None, kind: str = "bar", title: str | None = None
) -> go.Figure:
    """Mean attribution per component, averaged over examples (NaN-aware).

    Args:
        result: a :class:`~idiomlens.attribution.DLAResult`.
        group: one group to show; ``None`` shows every group side by side (``kind="bar"``)
            or the first group (``kind="heads"``).
        kind: ``"bar"`` (one bar per component and group, residual order) or ``"heads"``
            (a layer x head heatmap of the head components, diverging colours at 0).
        title: figure title.
    """
    n = len(result.ids)
    if kind == "heads":
        g = group or result.groups[0]
        values = result.head_matrix(g)
        fig = go.Figure(
            go.Heatmap(
                z=values.tolist(),
                x=list(range(values.shape[1])),
                y=list(range(values.shape[0])),
                colorscale="RdBu",
                zmid=0.0,
                colorbar={"title": "logit"},
                hovertemplate="L%{y}H%{x}: %{z:.4f}<extra></extra>",
            )
        )
        fig.update_layout(
            title=title or f"Head DLA, {g} targets, mean over {n} examples",
            xaxis_title="head",
            yaxis_title="layer",
        )
        fig.update_yaxes(autorange="reversed", dtick=1)
        return fig
    if kind != "bar":
        raise ValueError(f"kind must be 'bar' or 'heads', got {kind!r}")
    means = result.mean()
    groups = [group] if group is not None else list(result.groups)
    fig = go.Figure(
        [
            go.Bar(name=g, x=list(result.labels), y=means[:, result.group_index(g)].tolist())
            for g in groups
        ]
    )
    fig.update_layout(
        title=title or f"Direct logit attribution, mean over {n} examples",
        xaxis_title="component",
        yaxis_title="logit contribution",
        barmode="group",
    )
    return fig
