"""A small builder for self-contained, offline HTML reports.

A :class:`Report` is an ordered list of sections (text, plotly figures, tables). The
written file needs no network: plotly.js is inlined once, in the first figure, and
every later figure reuses it; there is no CDN link, no MathJax, no external CSS.

>>> import plotly.graph_objects as go
>>> report = Report("Demo")
>>> html = (
...     report.add_text("Two bars.", heading="Intro")
...     .add_figure(go.Figure(go.Bar(y=[1, 2])), caption="A figure")
...     .to_html()
... )
>>> html.count("<script src=")
0
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .._io import atomic_write_bytes

__all__ = ["Report"]

log = logging.getLogger(__name__)

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #222; line-height: 1.5; padding: 0 1rem; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3rem; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #eee; }
.caption { color: #555; font-size: .92rem; margin: .2rem 0 1rem; }
table.dataframe { border-collapse: collapse; font-size: .9rem; margin: .5rem 0; }
table.dataframe th, table.dataframe td { border: 1px solid #ddd; padding: .25rem .6rem;
       text-align: right; }
table.dataframe th { background: #f5f5f5; }
pre { background: #f7f7f7; padding: .6rem; overflow-x: auto; }
"""


@dataclass
class Report:
    """An offline HTML report: add sections in order, then :meth:`write` it.

    Args:
        title: the page title and top heading.
    """

    title: str
    _sections: list[tuple[str, Any, str | None, str | None]] = field(
        default_factory=list, repr=False
    )

    def add_text(self, text: str, *, heading: str | None = None) -> Report:
        """A text section; blank lines separate paragraphs; the text is HTML-escaped."""
        self._sections.append(("text", text, heading, None))
        return self

    def add_code(self, text: str, *, heading: str | None = None) -> Report:
        """A preformatted block (e.g. the command that reproduces the report)."""
        self._sections.append(("code", text, heading, None))
        return self

    def add_figure(
        self, figure: Any, *, heading: str | None = None, caption: str | None = None
    ) -> Report:
        """A plotly figure (anything with ``to_html``, e.g. a result's ``.plot()``)."""
        if not hasattr(figure, "to_html"):
            raise TypeError(f"add_figure needs a plotly Figure, got {type(figure).__name__}")
        self._sections.append(("figure", figure, heading, caption))
        return self

    def add_table(
        self, table: pd.DataFrame, *, heading: str | None = None, caption: str | None = None
    ) -> Report:
        """A table from a DataFrame (cells are escaped; floats shown with 4 digits)."""
        if not isinstance(table, pd.DataFrame):
            raise TypeError(f"add_table needs a pandas DataFrame, got {type(table).__name__}")
        self._sections.append(("table", table, heading, caption))
        return self

    def to_html(self) -> str:
        """The whole page as a string (plotly.js inlined once if there is a figure)."""
        parts = [f"<h1>{html.escape(self.title)}</h1>"]
        inlined = False
        for kind, body, heading, caption in self._sections:
            if heading:
                parts.append(f"<h2>{html.escape(heading)}</h2>")
            if kind == "text":
                paragraphs = [p.strip() for p in body.split("\n\n") if p.strip()]
                parts.extend(f"<p>{html.escape(p)}</p>" for p in paragraphs)
            elif kind == "code":
                parts.append(f"<pre>{html.escape(body)}</pre>")
            elif kind == "figure":
                parts.append(
                    body.to_html(
                        full_html=False,
                        include_plotlyjs=not inlined,
                        include_mathjax=False,
                        config={"displaylogo": False},
                    )
                )
                inlined = True
            else:
                parts.append(body.to_html(float_format=lambda x: f"{x:.4f}", border=0))
            if caption:
                parts.append(f'<p class="caption">{html.escape(caption)}</p>')
        n_figures = sum(kind == "figure" for kind, *_ in self._sections)
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            # what a browser check holds the rendered page to (tests/docs/browser.py)
            f'<meta name="idiomlens-figures" content="{n_figures}">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>\n"
            "<body>\n" + "\n".join(parts) + "\n</body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        """Write the page to ``path`` atomically; returns the path."""
        path = atomic_write_bytes(path, self.to_html().encode("utf-8"))
        log.info("wrote report %s (%d sections)", path, len(self._sections))
        return path
