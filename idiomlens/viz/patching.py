"""Heatmaps of activation / attribution patching results.

>>> import torch
>>> from idiomlens.interventions import PatchingResult
>>> result = PatchingResult(torch.zeros(2, 4), "head_all_pos", ("layer", "head"), 1.0, 0.0)
>>> plot_patching(result).data[0].type
'heatmap'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["plot_patching"]

VALUES = ("change", "effect", "recovered")


def plot_patching(
    result: Any,
    *,
    value: str = "change",
    pos_labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Any:
    """A diverging heatmap of a :class:`~idiomlens.interventions.PatchingResult`.

    Rows are layers (``[layer, head]``, ``[layer, pos]``) or layer/head pairs
    ``L1H3`` (``[layer, pos, head]``); columns are heads or positions.

    Args:
        result: the patching result.
        value: ``"change"`` (metric change; default), ``"effect"`` (raw effects) or
            ``"recovered"`` (change / (clean - corrupted)).
        pos_labels: names of the positions (e.g. the token strings), for position axes.
        title: figure title; default names the kind, method and value.

    Returns:
        a ``plotly.graph_objects.Figure``; colour 0 is white, red is positive.
    """
    import einops
    import plotly.graph_objects as go

    from .._heads import head_label

    if value not in VALUES:
        raise ValueError(f"value must be one of {VALUES}, got {value!r}")
    data = {"change": result.change, "effect": result.effects, "recovered": result.recovered}
    grid = data[value].detach().float().cpu()
    axes = tuple(result.axes)
    if axes == ("layer", "pos", "head"):
        n_heads = grid.shape[2]
        grid = einops.rearrange(grid, "layer pos head -> (layer head) pos")
        rows = [head_label(i // n_heads, i % n_heads) for i in range(grid.shape[0])]
    else:
        rows = [f"L{i}" for i in range(grid.shape[0])]
    if axes[-1] == "head":
        cols = [f"H{i}" for i in range(grid.shape[1])]
    else:
        cols = (
            list(pos_labels) if pos_labels is not None else [f"{i}" for i in range(grid.shape[1])]
        )
        cols = [f"{i}: {c}" for i, c in enumerate(cols)] if pos_labels is not None else cols
    if len(cols) != grid.shape[1]:
        raise ValueError(f"{len(cols)} position labels for {grid.shape[1]} positions")
    bound = float(grid.nan_to_num(0.0).abs().max()) or 1.0
    fig = go.Figure(
        go.Heatmap(
            z=grid.tolist(),
            x=cols,
            y=rows,
            zmid=0.0,
            zmin=-bound,
            zmax=bound,
            colorscale="RdBu_r",
            colorbar={"title": value},
        )
    )
    x_title = "position" if "pos" in axes else "head"
    fig.update_layout(
        title=title or f"{result.method} patching ({result.kind}): {value}",
        xaxis_title=x_title,
        yaxis_title="layer" if len(axes) == 2 else "layer.head",
        yaxis_autorange="reversed",
    )
    return fig
