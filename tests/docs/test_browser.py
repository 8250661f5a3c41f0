"""The demo report and the rendered notebooks, opened in a real (headless) browser."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .browser import check_page, chromium_path

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    chromium_path() is None,
    reason="no browser: install Debian's chromium (apt-get install -y chromium) and playwright",
)


def test_demo_report_renders_every_figure(demo_out):
    _, report = demo_out
    check = check_page(report)
    assert check.ok, check.problems
    assert check.declared and len(check.figures) == check.declared


@pytest.fixture(scope="module")
def report_html(demo_out) -> str:
    return Path(demo_out[1]).read_text(encoding="utf-8")


#: One figure as plotly's to_html writes it: the div and the script that draws it.
_FIGURE = r'<div id="[^"]+" class="plotly-graph-div"[^>]*></div>\s*<script[^>]*>.*?</script>'


def _first_figure(html: str) -> re.Match:
    """The first figure block Report writes: its div and the script that draws it."""
    match = re.search(_FIGURE, html, re.S)
    assert match, "the report layout changed; update this test"
    return match


def test_a_removed_figure_is_caught(report_html, tmp_path):
    last = list(re.finditer(_FIGURE, report_html, re.S))[-1]
    broken = tmp_path / "removed.html"
    broken.write_text(report_html[: last.start()] + report_html[last.end() :], encoding="utf-8")
    check = check_page(broken)
    assert any("figures on the page" in p for p in check.problems), check.problems


def test_an_injected_script_error_is_caught(report_html, tmp_path):
    broken = tmp_path / "error.html"
    broken.write_text(
        report_html.replace("</body>", '<script>throw new Error("injected")</script></body>'),
        encoding="utf-8",
    )
    check = check_page(broken)
    assert any("injected" in p for p in check.problems), check.problems


def test_a_figure_that_does_not_draw_is_caught(report_html, tmp_path):
    first = _first_figure(report_html)
    block = first.group(0)
    # keep the empty div, break the call that draws it (plotly.js itself stays inlined)
    broken_block = (
        block.replace("Plotly.newPlot(", "void(", 1) if block.count("Plotly.newPlot(") else block
    )
    broken = tmp_path / "undrawn.html"
    broken.write_text(report_html.replace(block, broken_block, 1), encoding="utf-8")
    check = check_page(broken)
    assert any("did not render" in p or "figures on the page" in p for p in check.problems)


def _rendered_notebooks() -> list[Path]:
    return sorted((ROOT / "site" / "notebooks").glob("*/index.html"))


@pytest.mark.skipif(
    not _rendered_notebooks(),
    reason="docs not built (run tools/run_notebooks.py and mkdocs build first, as .ci/run does)",
)
@pytest.mark.parametrize("page", _rendered_notebooks(), ids=lambda p: p.parent.name)
def test_rendered_notebooks_show_their_figures(page):
    notebook = ROOT / "docs" / "notebooks" / f"{page.parent.name}.ipynb"
    cells = json.loads(notebook.read_text())["cells"]
    n_plots = sum(
        "application/vnd.plotly.v1+json" in out.get("data", {})
        for cell in cells
        for out in cell.get("outputs", [])
    )
    check = check_page(page, min_figures=n_plots)
    assert check.ok, check.problems
