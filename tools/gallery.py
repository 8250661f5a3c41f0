"""Screenshot figures of the demo report for the README gallery (headless Chromium).

    python tools/gallery.py REPORT.html [--out docs/img]

Writes ``demo-N.png`` for the report's figures chosen below, each cropped to the figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.docs.browser import CHROMIUM_FLAGS, chromium_path  # noqa: E402

#: Which figures of the report (0-based) go into the gallery, and their file names.
PICKS = {0: "demo-ablation.png", 7: "demo-validation.png", 5: "demo-idiom-vs-literal.png"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 900, "height": 700})
        page.goto(args.report.resolve().as_uri(), wait_until="load")
        page.wait_for_function("document.querySelectorAll('.plotly-graph-div svg.main-svg').length")
        figures = page.query_selector_all(".plotly-graph-div")
        for index, name in PICKS.items():
            figures[index].scroll_into_view_if_needed()
            figures[index].screenshot(path=str(args.out / name))
            print(args.out / name)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
