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
