"""Plotly figures for representations and their per-layer metrics.

* :func:`plot_projection`: a 2-d scatter of one site's rows, coloured by a label, with
  a slider over layers (each layer projected on its own, see
  :meth:`~idiomlens.representations.Representations.project`).
* :func:`plot_layer_profile`: a metric against the layer, one line per condition (base
  vs each fine-tune, figurative vs literal, ...). Its input is a tidy
  ``pandas.DataFrame`` with columns ``layer``, ``value`` and optionally ``condition``
  (one line each) and ``lo`` / ``hi`` (a confidence band); every geometry or probe
  result that has one row per layer and condition can be plotted with it.

>>> import pandas as pd
>>> df = pd.DataFrame({"layer": [0, 1, 0, 1], "value": [1.0, 2.0, 1.5, 2.5],
...                    "condition": ["base", "base", "lora", "lora"]})
>>> [t.name for t in plot_layer_profile(df, title="ID").data]
['base', 'lora']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

__all__ = ["plot_projection", "plot_layer_profile"]

_MAX_CATEGORIES = 30


def _is_categorical(values: Any) -> bool:
    distinct = set(values)
    if any(isinstance(v, str) or isinstance(v, bool) or v is None for v in distinct):
        return True
    return len(distinct) <= _MAX_CATEGORIES


def _layer_traces(df: Any, label: str | None, hover: list[str]) -> list[go.Scatter]:
    text = df[hover].astype(str).agg(" | ".join, axis=1) if hover else None
    if label is None:
        return [go.Scatter(x=df["x"], y=df["y"], mode="markers", name="rows", text=text)]
    if not _is_categorical(df[label]):
        marker = {"color": df[label], "colorscale": "Viridis", "showscale": True,
                  "colorbar": {"title": label}}  # fmt: skip
        return [
            go.Scatter(x=df["x"], y=df["y"], mode="markers", marker=marker, name=label, text=text)
        ]
    traces = []
    for value in sorted(set(df[label]), key=str):
        part = df[df[label] == value] if value is not None else df[df[label].isna()]
        traces.append(
            go.Scatter(
                x=part["x"],
                y=part["y"],
                mode="markers",
                name=str(value),
                legendgroup=str(value),
                text=None if text is None else text[part.index],
            )
        )
    return traces


def plot_projection(
    reps: Any,
    *,
    label: str | None = None,
    method: str = "pca",
    layers: Sequence[int] | None = None,
    seed: int = 0,
    title: str | None = None,
    **kwargs: Any,
) -> go.Figure:
    """Scatter of each layer's 2-d projection coloured by ``label``, a slider over layers.

    Args:
        reps: a :class:`~idiomlens.representations.Representations`.
        label: a label name (default: ``label`` if present, else the first label, else
            none); categorical labels get one trace per value, numeric ones a colour scale.
        method: ``pca``, ``tsne`` or ``umap`` (passed to ``reps.project``).
        layers: the layers on the slider (default all of ``reps.layers``).
        seed, kwargs: for the projection.
    """
    layers = list(reps.layers if layers is None else layers)
    if label is None:
        label = "label" if "label" in reps.labels else next(iter(reps.labels), None)
    elif label not in reps.labels:
        raise KeyError(f"no label {label!r}; labels: {sorted(reps.labels)}")
    hover = [c for c in ("row_id", "token") if c == "row_id" or c in reps.labels]
    fig = go.Figure()
    spans = []
    for i, layer in enumerate(layers):
        df = reps.project(layer, method=method, dims=2, seed=seed, **kwargs)
        traces = _layer_traces(df, label, hover)
        start = len(fig.data)
        for t in traces:
            t.visible = i == 0
            t.showlegend = True
            fig.add_trace(t)
        spans.append((start, len(fig.data)))
    steps = []
    for i, layer in enumerate(layers):
        visible = [spans[i][0] <= j < spans[i][1] for j in range(len(fig.data))]
        steps.append({"method": "update", "label": str(layer), "args": [{"visible": visible}]})
    fig.update_layout(
        title=title
        or f"{reps.site} / {reps.pool}: {method.upper()} per layer"
        + (f", coloured by {label}" if label else ""),
        sliders=[{"active": 0, "currentvalue": {"prefix": "layer "}, "steps": steps}],
        xaxis_title=f"{method} 1",
        yaxis_title=f"{method} 2",
        legend_title=label or "",
    )
    return fig


def plot_layer_profile(
    df: Any,
    *,
    value: str = "value",
    condition: str = "condition",
    layer: str = "layer",
    title: str | None = None,
    yaxis_title: str | None = None,
) -> go.Figure:
    """A metric against the layer, one line per condition, optional ``lo``/``hi`` bands.

    Args:
        df: tidy rows ``layer, value[, condition][, lo, hi]`` (column names adjustable).
        value, condition, layer: the column names to read.
        title, yaxis_title: labels (the y axis defaults to ``value``'s name).
    """
    missing = [c for c in (layer, value) if c not in df.columns]
    if missing:
        raise KeyError(f"plot_layer_profile needs columns {missing}; got {list(df.columns)}")
    groups = df.groupby(condition, sort=False) if condition in df.columns else [(value, df)]
    fig = go.Figure()
    for name, part in groups:
        part = part.sort_values(layer)
        if "lo" in part.columns and "hi" in part.columns:
            band_x = list(part[layer]) + list(part[layer])[::-1]
            band_y = list(part["hi"]) + list(part["lo"])[::-1]
            fig.add_trace(go.Scatter(x=band_x, y=band_y, fill="toself", opacity=0.2, mode="lines",
                                     line={"width": 0}, showlegend=False, hoverinfo="skip",
                                     legendgroup=str(name)))  # fmt: skip
        fig.add_trace(go.Scatter(x=part[layer], y=part[value], mode="lines+markers",
                                 name=str(name), legendgroup=str(name)))  # fmt: skip
    fig.update_layout(title=title or f"{value} per layer", xaxis_title="layer",
                      yaxis_title=yaxis_title or value)  # fmt: skip
    fig.update_xaxes(dtick=1)
    return fig
