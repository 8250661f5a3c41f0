"""mkdocs hooks: the CLI and API reference pages are generated, never hand-written.

- ``cli.md``: ``{{ cli_reference }}`` becomes the ``--help`` of ``idiomlens`` and of
  every subcommand, read from :func:`idiomlens.cli.build_parser`;
- ``api.md``: ``{{ api_reference }}`` becomes one mkdocstrings block per public name in
  ``idiomlens.__all__`` (grouped by module), so a new export cannot be left out.
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict

CLI_MARK = "{{ cli_reference }}"
API_MARK = "{{ api_reference }}"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps no public accessor
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_reference() -> str:
    """Markdown: the top-level help, then one section per subcommand."""
    from idiomlens.cli import build_parser

    os.environ.setdefault("COLUMNS", "100")
    parser = build_parser()
    parts = ["## `idiomlens`", "", "```text", parser.format_help().rstrip(), "```", ""]
    for name, sub in sorted(_subparsers(parser).items()):
        parts += [f"## `idiomlens {name}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


def api_reference() -> str:
    """Markdown: ``::: module.name`` for every public name, grouped by module."""
    import idiomlens

    by_module: dict[str, list[str]] = defaultdict(list)
    for name in sorted(idiomlens._EXPORTS):
        by_module[idiomlens._EXPORTS[name]].append(name)
    parts = []
    for module in sorted(by_module):
        parts += [f"## `{module}`", ""]
        for name in by_module[module]:
            parts += [f"::: {module}.{name}", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ANN001 - mkdocs API
    if CLI_MARK in markdown:
        markdown = markdown.replace(CLI_MARK, cli_reference())
    if API_MARK in markdown:
        markdown = markdown.replace(API_MARK, api_reference())
    return markdown
