"""The offline HTML report builder."""

from __future__ import annotations

import re

import pandas as pd
import plotly.graph_objects as go
import pytest

from idiomlens.viz.report import Report


def _report() -> Report:
    report = Report("Idiom <heads>")
    report.add_text("First paragraph.\n\nSecond & last.", heading="Intro")
    report.add_figure(go.Figure(go.Bar(y=[1, 2])), heading="Fig A", caption="caption A")
    report.add_figure(go.Figure(go.Heatmap(z=[[1, 2], [3, 4]])), heading="Fig B")
    report.add_table(pd.DataFrame({"head": ["L1H2"], "score": [0.123456]}), heading="Top")
    report.add_code("idiomlens demo --out DIR")
    return report


def test_report_is_self_contained(tmp_path):
    path = _report().write(tmp_path / "sub" / "report.html")
    html = path.read_text(encoding="utf-8")
    # no external script, stylesheet or font: every <script> is inline
    assert not re.search(r"<script[^>]*\bsrc=", html)
    assert not re.search(r"<link[^>]*\bhref=", html)
    assert "MathJax.js" not in html
    # plotly.js is inlined exactly once (it defines the global Plotly object) and both
    # figures are drawn with it
    assert html.count("window.PlotlyConfig") == 1
    assert html.count("Plotly.newPlot(") == 2
    assert len(html) > 1_000_000  # the library itself, not a link to it


def test_report_escapes_text_and_keeps_order(tmp_path):
    html = _report().to_html()
    assert "<title>Idiom &lt;heads&gt;</title>" in html
    assert "<p>Second &amp; last.</p>" in html
    order = [html.index(s) for s in ("Intro", "caption A", "Fig B", "0.1235", "idiomlens demo")]
    assert order == sorted(order)


def test_report_rejects_non_figures():
    with pytest.raises(TypeError, match="plotly Figure"):
        Report("x").add_figure([1, 2])
    with pytest.raises(TypeError, match="DataFrame"):
        Report("x").add_table({"a": 1})
