"""Execute the example notebooks (jupytext percent ``.py`` files) with nbclient.

    python tools/run_notebooks.py [--out docs/notebooks] [NAME ...]

Each ``examples/*.py`` whose header declares jupytext's percent format is converted to
a notebook, executed top to bottom in a fresh kernel (offline: ``HF_HUB_OFFLINE=1``),
and written with its outputs (figures included) to ``OUT/NAME.ipynb``, which the docs
site renders. A cell that raises fails the run with the notebook's name and the cell.
Prints the wall time of each notebook.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def notebooks(names: list[str]) -> list[Path]:
    """The percent-format example scripts, optionally only those named."""
    found = [
        p for p in sorted((ROOT / "examples").glob("*.py"))
        if "format_name: percent" in p.read_text()[:400]
    ]
    if names:
        found = [p for p in found if p.stem in names]
        missing = set(names) - {p.stem for p in found}
        if missing:
            raise SystemExit(f"no percent-format notebook named {sorted(missing)} in examples/")
    return found


PLOTLY_MIME = "application/vnd.plotly.v1+json"


def add_figure_html(nb) -> int:  # noqa: ANN001 - a nbformat notebook
    """Give every plotly output an HTML rendering for the docs site, offline: plotly.js
    inlined once (in the first figure), no MathJax, no CDN. Returns the figure count."""
    import json

    import plotly.io as pio

    n = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME not in data:
                continue
            figure = pio.from_json(json.dumps(data[PLOTLY_MIME]))
            data["text/html"] = figure.to_html(
                full_html=False, include_plotlyjs=n == 0, include_mathjax=False
            )
            n += 1
    return n


def execute(path: Path, out_dir: Path, timeout: int) -> float:
    """Run one notebook; returns its wall time in seconds."""
    import jupytext
    from nbclient import NotebookClient

    nb = jupytext.read(path)
    start = time.perf_counter()
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()
    add_figure_html(nb)
    out_dir.mkdir(parents=True, exist_ok=True)
    jupytext.write(nb, out_dir / f"{path.stem}.ipynb")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "notebooks")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    total = 0.0
    for path in notebooks(args.names):
        seconds = execute(path, args.out, args.timeout)
        total += seconds
        print(f"{path.name}: executed in {seconds:.1f} s", flush=True)
    print(f"all notebooks: {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
