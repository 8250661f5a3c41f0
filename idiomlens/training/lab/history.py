"""A run's history: a DataFrame of tracked metrics whose ``.plot()`` is a plotly figure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

__all__ = ["History", "plot_history", "AXES"]

#: x axes a history can be drawn over.
AXES = ("step", "samples", "tokens")


class History(pd.DataFrame):
    """One row per step that recorded something: ``step``, ``samples`` and ``tokens``
    seen, ``train_loss``, ``lr``, ``val_loss``, ``val_accuracy`` (tasks) and any value
    a callback logged; absent values are NaN.

    >>> h = History([{"step": 0, "samples": 0, "val_loss": 2.0}, {"step": 5, "samples": 40, "val_loss": 1.0}])
    >>> h.plot("val_loss", x="samples").data[0].y.tolist()
    [2.0, 1.0]
    """

    @property
    def _constructor(self) -> type:
        return History

    def metrics(self) -> list[str]:
        """The tracked metric columns (everything but the x axes)."""
        return [c for c in self.columns if c not in AXES]

    def plot(self, metrics: str | Sequence[str] | None = None, *, x: str = "step", **_: Any) -> Any:  # type: ignore[override]
        """A plotly figure of ``metrics`` (default: every tracked metric) over ``x``
        (``"step"``, ``"samples"`` or ``"tokens"``)."""
        return plot_history(self, metrics, x=x)


def plot_history(
    history: pd.DataFrame, metrics: str | Sequence[str] | None = None, *, x: str = "step"
) -> Any:
    """Lines of each metric over ``x``; one subplot row per metric."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if x not in AXES:
        raise ValueError(f"x must be one of {AXES}, got {x!r}")
    names = (
        [metrics]
        if isinstance(metrics, str)
        else list(metrics or [c for c in history.columns if c not in AXES])
    )
    missing = [m for m in names if m not in history.columns]
    if missing:
        raise ValueError(
            f"no tracked metric {missing[0]!r}; tracked: {[c for c in history.columns if c not in AXES]}"
        )
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, subplot_titles=names)
    for i, name in enumerate(names, start=1):
        sub = history[[x, name]].dropna()
        fig.add_trace(
            go.Scatter(x=sub[x], y=sub[name], mode="lines+markers", name=name), row=i, col=1
        )
    fig.update_xaxes(title_text=x, row=len(names), col=1)
    fig.update_layout(height=max(300, 220 * len(names)), showlegend=False)
    return fig


def history_frame(rows: list[dict[str, Any]]) -> History:
    """Rows (possibly several per step) merged into one row per step, sorted."""
    merged: dict[int, dict[str, Any]] = {}
    for row in rows:
        merged.setdefault(int(row["step"]), {}).update(row)
    frame = History([merged[s] for s in sorted(merged)])
    return frame if len(frame) else History(columns=["step", "samples", "tokens"])
