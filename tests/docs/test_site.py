"""The docs site's generated references cover every public name and every subcommand."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

import idiomlens
from idiomlens.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "site"


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "tools" / "docs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _public_names() -> list[str]:
    return [n for n in idiomlens.__all__ if n in idiomlens._EXPORTS]


def _subcommands() -> list[str]:
    return sorted(_hooks()._subparsers(build_parser()))


def test_generated_sources_list_everything():
    hooks = _hooks()
    api = hooks.api_reference()
    for name in _public_names():
        assert re.search(rf"^::: [\w.]+\.{name}$", api, re.M), name
    cli = hooks.cli_reference()
    assert _subcommands()
    for sub in _subcommands():
        assert f"## `idiomlens {sub}`" in cli


def _site_state() -> str | None:
    """Why the built site cannot be checked (``None`` when it can)."""
    page = SITE / "api" / "index.html"
    if not page.is_file():
        return "docs not built (mkdocs build, as .ci/run does)"
    built = page.stat().st_mtime
    newer = [p for p in (ROOT / "idiomlens").rglob("*.py") if p.stat().st_mtime > built]
    if newer:
        return f"the built site is older than {newer[0].relative_to(ROOT)}: rebuild it"
    return None


@pytest.mark.skipif(_site_state() is not None, reason=str(_site_state()))
def test_built_site_documents_every_name_and_subcommand():
    api = (SITE / "api" / "index.html").read_text(encoding="utf-8")
    hooks = _hooks()
    missing = [
        n
        for n in _public_names()
        if f'id="{hooks.defining_path(idiomlens._EXPORTS[n], n)}"' not in api
    ]
    assert not missing, f"not in the API reference: {missing}"
    cli = (SITE / "cli" / "index.html").read_text(encoding="utf-8")
    assert all(f"idiomlens {sub}" in cli for sub in _subcommands())
