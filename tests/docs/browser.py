"""Open a page in headless Chromium and check that what a reader sees is really there.

:func:`check_page` loads a local HTML file in Debian's Chromium (``/usr/bin/chromium``,
driven by Playwright's protocol client; no browser is ever downloaded), waits for the
plotly figures to draw, and reports every problem it finds:

- a console error or an uncaught script error;
- fewer rendered figures than the page declares (``<meta name="idiomlens-figures">``,
  written by :class:`idiomlens.viz.report.Report`) or than the caller expects;
- a figure that did not render: no plot SVG, zero size, or no data traces;
- a blank screenshot (a single colour).
"""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

_FIGURES_JS = """() => Array.from(document.querySelectorAll('.plotly-graph-div')).map(el => {
    const r = el.getBoundingClientRect();
    return {id: el.id, width: r.width, height: r.height,
            svg: el.querySelectorAll('svg.main-svg').length,
            traces: (el._fullData || []).length};
})"""


def chromium_path() -> str | None:
    """The system Chromium, or ``None`` when none is installed (or Playwright is missing)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None
    for candidate in (
        os.environ.get("IDIOMLENS_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@dataclass
class PageCheck:
    """What :func:`check_page` saw."""

    figures: list[dict] = field(default_factory=list)
    declared: int | None = None
    console_errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    screenshot: bytes = b""

    @property
    def ok(self) -> bool:
        return not self.problems


def _blank(png: bytes) -> bool:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    low, high = zip(*image.getextrema(), strict=True)
    return max(high) - min(low) < 8


def check_page(path: str | Path, *, min_figures: int = 0, timeout_ms: int = 30_000) -> PageCheck:
    """Load ``path`` in headless Chromium and check it (see the module docstring)."""
    from playwright.sync_api import sync_playwright

    result = PageCheck()
    url = Path(path).resolve().as_uri()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: m.type == "error" and result.console_errors.append(m.text))
            page.on("pageerror", lambda e: result.console_errors.append(f"uncaught: {e}"))
            page.on("requestfailed", lambda r: result.console_errors.append(f"failed: {r.url[:100]}"))
            page.goto(url, wait_until="load", timeout=timeout_ms)
            declared = page.evaluate(
                "() => { const m = document.querySelector('meta[name=idiomlens-figures]');"
                " return m ? parseInt(m.content) : null; }"
            )
            result.declared = declared
            expected = max(min_figures, declared or 0)
            if expected:
                try:
                    page.wait_for_function(
                        "n => Array.from(document.querySelectorAll('.plotly-graph-div'))"
                        ".filter(el => el._fullData && el.querySelector('svg.main-svg'))"
                        ".length >= n",
                        arg=expected,
                        timeout=timeout_ms,
                    )
                except Exception:  # noqa: BLE001 - reported below as a problem
                    pass
            result.figures = page.evaluate(_FIGURES_JS)
            result.screenshot = page.screenshot(full_page=True)
        finally:
            browser.close()
    _judge(result, expected)
    return result


def _judge(result: PageCheck, expected: int) -> None:
    result.problems += [f"console error: {e}" for e in result.console_errors]
    if len(result.figures) < expected:
        result.problems.append(f"{len(result.figures)} figures on the page, expected {expected}")
    for fig in result.figures:
        if not fig["svg"] or fig["width"] < 10 or fig["height"] < 10 or not fig["traces"]:
            result.problems.append(f"figure {fig['id']} did not render: {fig}")
    if _blank(result.screenshot):
        result.problems.append("the screenshot is blank")
