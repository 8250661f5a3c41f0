"""Layer profiles of geometry metrics: metric vs layer, one line per condition.

:func:`plot_layer_profile` takes any tidy DataFrame with columns ``layer``, ``value`` and
``condition`` (e.g. base vs each fine-tune), optionally ``panel`` for side-by-side
panels; :func:`plot_geometry` turns a :class:`~idiomlens.representations.geometry.GeometryResult`
table into one panel per metric.

>>> import pandas as pd
>>> df = pd.DataFrame({"layer": [0, 1, 0, 1], "value": [3.0, 4.0, 3.5, 5.0],
...                    "condition": ["base", "base", "lora", "lora"]})
>>> [t.name for t in plot_layer_profile(df).data]
['base', 'lora']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["plot_layer_profile", "plot_geometry"]

_TITLES = {
    "id_twonn": "intrinsic dimension (TwoNN)",
    "id_gride": "intrinsic dimension (GRIDE)",
    "n_clusters": "ADP clusters",
    "ari": "ARI (clusters vs labels)",
    "label_overlap": "label overlap",
    "neighbourhood_overlap": "neighbourhood overlap",
}


def plot_layer_profile(
    df: Any, *, title: str | None = None, y_title: str = "value", panel: str | None = None
) -> go.Figure:
    """Lines of ``value`` vs ``layer``, one per ``condition``; one panel per ``panel`` value."""
    panels = list(dict.fromkeys(df[panel])) if panel else [None]
    fig = make_subplots(
        rows=len(panels),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        subplot_titles=[_TITLES.get(p, str(p)) for p in panels] if panel else None,
    )
    for row, name in enumerate(panels, start=1):
        part = df if name is None else df[df[panel] == name]
        for cond in dict.fromkeys(part["condition"]):
            line = part[part["condition"] == cond].sort_values("layer")
            fig.add_trace(
                go.Scatter(
                    x=line["layer"].tolist(),
                    y=line["value"].tolist(),
                    mode="lines+markers",
                    name=str(cond),
                    legendgroup=str(cond),
                    showlegend=True,
                    hovertemplate=f"{cond}<br>layer %{{x}}: %{{y:.4g}}<extra></extra>",
                ),
                row=row,
                col=1,
            )
        fig.update_yaxes(title_text=y_title if panel is None else "", row=row, col=1)
    fig.update_xaxes(title_text="layer", dtick=1, row=len(panels), col=1)
    fig.update_layout(title=title, height=max(350, 260 * len(panels)))
    return fig


def _condition(row: Any) -> str:
    import pandas as pd

    parts = []
    if not pd.isna(row["scale"]):
        parts.append(f"n1={int(row['scale'])}")
    if not pd.isna(row["labels"]):
        parts.append(str(row["labels"]))
    return ", ".join(parts) or str(row["metric"])


def plot_geometry(
    df: Any, *, metrics: Sequence[str] | None = None, title: str | None = None
) -> go.Figure:
    """One panel per metric of a geometry table (``GeometryResult.to_dataframe()``)."""
    if metrics is not None:
        df = df[df["metric"].isin(list(metrics))]
    df = df.assign(
        condition=[_condition(r) for r in df.to_dict("records")], panel=df["metric"].tolist()
    )
    return plot_layer_profile(df, title=title, panel="panel")
