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


@pytest.mark.skipif(
    not (SITE / "api" / "index.html").is_file(),
    reason="docs not built (mkdocs build, as .ci/run does)",
)
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
