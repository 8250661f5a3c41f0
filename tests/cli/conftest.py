"""CLI fixtures: a tiny model saved to disk and corpora written as JSONL."""

from __future__ import annotations

import json

import pytest

from idiomlens.models import save_hooked, tiny_model
from tests.runs.conftest import small_corpus


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory):
    return save_hooked(tiny_model(n_layers=2, n_heads=4, seed=0), tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory):
    return small_corpus(12).to_jsonl(tmp_path_factory.mktemp("corpus") / "small.jsonl")


def write_records(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(autouse=True, scope="session")
def _file_hash_cache(tmp_path_factory):
    """Keep the CLI's file-hash cache out of the user's home (subprocesses inherit it)."""
    import os

    from idiomlens.runs.request import CACHE_ENV

    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("hash-cache"))
    yield
    if old is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = old
