"""Plotly figures for probes: accuracy and control against layer, comparisons, profiles.

>>> import torch
>>> from idiomlens.representations import Representations
>>> from idiomlens.representations.probes import train_probes
>>> reps = Representations.from_tensors({0: torch.randn(40, 3), 1: torch.randn(40, 3)},
...                                     labels=[i % 2 for i in range(40)])
>>> [t.name for t in plot_probes(train_probes(reps, progress=False)).data]
['probe', 'control', 'majority class']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go
from plotly.subplots import make_subplots

if TYPE_CHECKING:
    from ..representations.probes import ProbeComparison, ProbeProfile, ProbeResult

__all__ = ["plot_probes", "plot_probe_comparison", "plot_probe_profile"]


def _label(result: ProbeResult) -> str:
    return result.label_field or "labels"


def plot_probes(
    result: ProbeResult, *, title: str | None = None, selectivity: bool = False
) -> go.Figure:
    """Test accuracy of the probe and of the control probe per layer (and, with
    ``selectivity=True``, their difference), with the majority-class rate as a baseline."""
    x = list(result.layers)
    fig = go.Figure()
    fig.add_scatter(x=x, y=result.accuracy.tolist(), mode="lines+markers", name="probe")
    if result.has_control:
        fig.add_scatter(
            x=x, y=result.control_accuracy.tolist(), mode="lines+markers", name="control",
            line={"dash": "dot"},
        )  # fmt: skip
        if selectivity:
            fig.add_scatter(x=x, y=result.selectivity.tolist(), mode="lines", name="selectivity")
    fig.add_scatter(
        x=[x[0], x[-1]], y=[result.majority_accuracy] * 2, mode="lines", name="majority class",
        line={"color": "grey", "dash": "dash"},
    )  # fmt: skip
    default = (
        f"Probe accuracy for {_label(result)} ({len(result.classes)} classes, "
        f"{len(result.ids)} test rows) — {result.site}/{result.pool}"
    )
    fig.update_layout(
        title=title or default,
        xaxis_title="layer",
        yaxis_title="test accuracy",
        yaxis_range=[0, 1.02],
    )
    fig.update_xaxes(dtick=1)
    return fig


def plot_probe_comparison(cmp: ProbeComparison, *, title: str | None = None) -> go.Figure:
    """Top: both conditions' accuracy (solid) and control (dotted) per layer. Bottom:
    ``b - a`` with its bootstrap CI."""
    a, b = cmp.names
    x = list(cmp.layers)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35])
    for name, acc, ctrl in ((a, cmp.accuracy_a, cmp.control_a), (b, cmp.accuracy_b, cmp.control_b)):
        fig.add_scatter(x=x, y=acc.tolist(), mode="lines+markers", name=name, row=1, col=1)
        if not bool(ctrl.isnan().all()):
            fig.add_scatter(
                x=x, y=ctrl.tolist(), mode="lines", name=f"{name} control", line={"dash": "dot"},
                row=1, col=1,
            )  # fmt: skip
    fig.add_scatter(
        x=x, y=cmp.diff.tolist(), mode="lines+markers", name=f"{b} − {a}",
        error_y={"type": "data", "symmetric": False,
                 "array": (cmp.ci_high - cmp.diff).tolist(),
                 "arrayminus": (cmp.diff - cmp.ci_low).tolist()},
        row=2, col=1,
    )  # fmt: skip
    fig.add_hline(y=0, line={"color": "grey", "dash": "dash"}, row=2, col=1)
    fig.update_yaxes(title_text="test accuracy", row=1, col=1)
    fig.update_yaxes(title_text=f"difference ({cmp.ci:.0%} CI)", row=2, col=1)
    fig.update_xaxes(title_text="layer", dtick=1, row=2, col=1)
    kind = "paired" if cmp.paired else "unpaired"
    fig.update_layout(title=title or f"Probes: {b} vs {a} ({kind} bootstrap, {cmp.n_boot} draws)")
    return fig


def plot_probe_profile(
    profile: ProbeProfile, *, kind: str = "lines", value: str = "accuracy", title: str | None = None
) -> go.Figure:
    """Probe profile along checkpoints: one curve per checkpoint (``kind="lines"``) or a
    checkpoint x layer heatmap (``kind="heatmap"``) of ``value`` (accuracy, selectivity,
    control_accuracy or diff)."""
    values = getattr(profile, value)
    if kind == "heatmap":
        fig = go.Figure(
            go.Heatmap(
                z=values.tolist(), x=list(profile.layers), y=[str(s) for s in profile.steps],
                colorbar={"title": value}, colorscale="Viridis",
            )
        )  # fmt: skip
        fig.update_layout(xaxis_title="layer", yaxis_title="step")
    elif kind == "lines":
        fig = go.Figure()
        for i, (name, step) in enumerate(zip(profile.names, profile.steps, strict=True)):
            fig.add_scatter(
                x=list(profile.layers), y=values[i].tolist(), mode="lines+markers",
                name=f"{name} (step {step})",
            )  # fmt: skip
        fig.update_layout(xaxis_title="layer", yaxis_title=value)
    else:
        raise ValueError(f"kind is 'lines' or 'heatmap', not {kind!r}")
    fig.update_xaxes(dtick=1)
    fig.update_layout(title=title or f"Probe {value} across {len(profile.names)} checkpoints")
    return fig
