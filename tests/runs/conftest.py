"""Fixtures for the run-engine tests: a corpus of a few dozen short examples."""

from __future__ import annotations

import pytest

from idiomlens.data import IdiomCorpus
from tests.conftest import make_example

from .analyses import CALLS

PHRASES = ["spilled the beans", "kicked the bucket", "a piece of cake", "hit the nail"]


def small_corpus(n: int, *, prefix: str = "ex") -> IdiomCorpus:
    """``n`` short sentences of varied length, alternating figurative and literal."""
    rows = []
    for i in range(n):
        phrase = PHRASES[i % len(PHRASES)]
        text = f"{'Then ' * (i % 3)}he {phrase} today {i}."
        rows.append(
            make_example(f"{prefix}-{i:05d}", text, phrase, ("figurative", "literal")[i % 2])
        )
    return IdiomCorpus(rows, name="runs")


@pytest.fixture
def runs_corpus() -> IdiomCorpus:
    return small_corpus(23)


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()
    yield


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
