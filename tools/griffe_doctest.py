"""A griffe extension for the API reference: doctest blocks render as code.

idiomlens docstrings put runnable ``>>>`` examples in their prose (pytest runs them).
Markdown would read their output lines as text (``[1]`` even as a link), so every run of
``>>>`` / ``...`` lines and the output lines that follow, up to a blank line, is wrapped
in a ``pycon`` code fence before mkdocstrings renders the docstring.
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """``text`` with each doctest block wrapped in a fenced ``pycon`` code block."""
    out: list[str] = []
    block: list[str] = []
    indent = ""
    for line in [*text.splitlines(), ""]:
        stripped = line.lstrip()
        if not block and stripped.startswith(">>>"):
            indent = line[: len(line) - len(stripped)]
            block = [line]
        elif block and stripped:
            block.append(line)
        else:
            if block:
                out += [f"{indent}```pycon", *block, f"{indent}```"]
                block = []
            out.append(line)
    return "\n".join(out[:-1])


class DoctestFences(griffe.Extension):
    """Fence the doctest blocks of every docstring griffe loads."""

    def on_instance(self, *, node: Any, obj: griffe.Object, agent: Any, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
