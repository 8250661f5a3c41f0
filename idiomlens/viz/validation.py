"""Plotly figures for head-ranking validation, and the demo report's validation section.

- :func:`plot_validation`: left, the control sets' effects as a histogram with the
  top-``k`` effect (and its bootstrap CI) as a line; right, every head's ranking score
  against its single-head ablation effect (top-``k`` heads highlighted);
- :func:`plot_comparison`: per ranking, the control effects as a box and the top-``k``
  effect with its CI as a marker;
- :func:`add_validation_section`: a table and both kinds of figure added to a
  :class:`~idiomlens.viz.report.Report`, with a sentence naming the rankings that pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..validation.ranking import head_label

if TYPE_CHECKING:
    from ..validation import ComparisonResult, ValidationResult

__all__ = ["plot_validation", "plot_comparison", "add_validation_section", "validation_sentence"]


def plot_validation(result: ValidationResult, *, title: str | None = None) -> go.Figure:
    """Top-``k`` effect vs the control distribution, and per-head score vs causal effect."""
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            f"top-{result.k} vs {result.control_effects.numel()} control sets",
            "per-head score vs single-head effect",
        ),
    )
    fig.add_trace(
        go.Histogram(x=result.control_effects.tolist(), name="control sets", nbinsx=30),
        row=1,
        col=1,
    )
    lo, hi = result.ci
    fig.add_vrect(x0=lo, x1=hi, fillcolor="crimson", opacity=0.15, line_width=0, row=1, col=1)
    fig.add_vline(x=result.effect, line_color="crimson", row=1, col=1)
    table = result.to_dataframe()
    for top, colour in ((False, "#888"), (True, "crimson")):
        part = table[table["in_top_k"] == top]
        fig.add_trace(
            go.Scatter(
                x=part["score"],
                y=part["effect"],
                mode="markers+text",
                text=part["head"],
                textposition="top center",
                marker={"color": colour, "size": 9},
                name=f"top-{result.k}" if top else "other heads",
            ),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text=f"mean {result.metric}", row=1, col=1)
    fig.update_yaxes(title_text="control sets", row=1, col=1)
    fig.update_xaxes(title_text=f"{result.ranking} score", row=1, col=2)
    fig.update_yaxes(title_text=f"single-head {result.metric}", row=1, col=2)
    fig.update_layout(
        title=title
        or (
            f"{result.ranking}: top-{result.k} effect {result.effect:.3g}, p = "
            f"{result.p_value:.3g}, Spearman {result.spearman:.2f} ({result.kind} ablation)"
        ),
        bargap=0.05,
    )
    return fig


def plot_comparison(result: ComparisonResult, *, title: str | None = None) -> go.Figure:
    """Per ranking: control effects (box) and the top-``k`` effect with its CI (marker)."""
    fig = go.Figure()
    for name, res in result.results.items():
        fig.add_trace(
            go.Box(
                y=res.control_effects.tolist(),
                name=name,
                marker_color="#999",
                boxpoints="outliers",
                showlegend=False,
            )
        )
        lo, hi = res.ci
        fig.add_trace(
            go.Scatter(
                x=[name],
                y=[res.effect],
                mode="markers",
                marker={"color": "crimson", "size": 12, "symbol": "diamond"},
                error_y={
                    "type": "data",
                    "array": [hi - res.effect],
                    "arrayminus": [res.effect - lo],
                },
                name=f"{name}: top-{res.k} (p = {res.p_value:.3g})",
            )
        )
    fig.update_layout(
        title=title or f"top-k effect vs random control sets ({result.kind} ablation)",
        yaxis_title=f"mean {result.metric}",
    )
    return fig


def validation_sentence(result: ComparisonResult, *, alpha: float = 0.05) -> str:
    """A sentence stating which rankings pass (``p < alpha``, positive effect), with numbers."""
    parts = []
    for name, res in result.results.items():
        heads = ", ".join(head_label(*h) for h in res.top_heads)
        lo, hi = res.ci
        verdict = "passes" if res.passed(alpha) else "fails"
        parts.append(
            f"{name} (top {heads}) {verdict}: effect {res.effect:.3f} [{lo:.3f}, {hi:.3f}] "
            f"vs control mean {float(res.control_effects.mean()):.3f}, p = {res.p_value:.3g} "
            f"(over distinct control sets: {res.distinct_p_value:.3g}), "
            f"Spearman {res.spearman:.2f}"
        )
    passing = [n for n, r in result.results.items() if r.passed(alpha)]
    head = (
        f"Rankings that pass validation (p < {alpha}): {', '.join(passing)}."
        if passing
        else f"No ranking passes validation (p < {alpha})."
    )
    text = head + "\n\n" + ";\n".join(parts) + "."
    first = next(iter(result.results.values()))
    n_sets = first.n_possible_controls
    if 1 / (1 + n_sets) >= alpha / 10:
        text += (
            f"\n\nCaveat: this model has only {n_sets} possible control sets of {first.k} heads "
            f"outside a top {first.k}, so against every possible set once no ranking can reach "
            f"p < {1 / (1 + n_sets):.3g}; the p-value above counts each of the "
            f"{first.control_effects.numel()} random draws (METHODS.md)."
        )
    return text


def add_validation_section(report: Any, result: ComparisonResult, *, alpha: float = 0.05) -> Any:
    """Add the comparison table, its figure and each ranking's figure to ``report``."""
    k = int(result.heads.shape[1])
    n_ctrl = int(result.control_heads.shape[1])
    report.add_text(
        f"Each ranking's top {k} heads are {result.kind}-ablated together and compared with "
        f"{n_ctrl} random sets of {k} other heads (seeded); the metric is the mean "
        f"{result.metric} of the last idiom word over {len(result)} sentences. "
        + validation_sentence(result, alpha=alpha),
        heading="Validating head rankings",
    )
    table = result.to_dataframe(alpha).set_index("ranking")
    report.add_table(
        table, caption="p: fraction of control sets at least as strong (+1 corrected)."
    )
    report.add_figure(result.plot())
    for res in result.results.values():
        report.add_figure(res.plot())
    return report
