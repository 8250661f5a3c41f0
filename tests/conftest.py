"""Shared fixtures: tiny models built from configs in milliseconds, and a small corpus."""

from __future__ import annotations

import pytest
import torch

from idiomlens.data import IdiomCorpus, IdiomExample
from idiomlens.models import tiny_model


def make_example(ex_id: str, text: str, idiom: str, label: str = "figurative") -> IdiomExample:
    """An example whose span is the first occurrence of ``idiom`` in ``text``."""
    start = text.index(idiom)
    return IdiomExample(ex_id, text, (start, start + len(idiom)), label)


SENTENCES = [
    ("fig-0", "He finally spilled the beans about the party.", "spilled the beans", "figurative"),
    ("lit-0", "She spilled the beans all over the kitchen floor.", "spilled the beans", "literal"),
    ("fig-1", "The old farmer kicked the bucket last winter.", "kicked the bucket", "figurative"),
    ("fig-2", "Break a leg, she said.", "Break a leg", "figurative"),
    (
        "fig-3",
        "It's raining cats and dogs, so don't forget your umbrella!",
        "raining cats and dogs",
        "figurative",
    ),
    ("fig-4", "The exam was a piece of cake.", "a piece of cake", "figurative"),
    ("fig-5", "You hit the nail on the head.", "hit the nail on the head", "figurative"),
    (
        "lit-1",
        "He let the cat out of the bag before dinner.",
        "let the cat out of the bag",
        "literal",
    ),
    (
        "fig-6",
        "Don't beat around the bush: tell me what happened.",
        "beat around the bush",
        "figurative",
    ),
    ("fig-7", "Once in a blue moon, the river floods.", "Once in a blue moon", "figurative"),
]


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tiny tensors: one intra-op thread is about twice as fast as two (measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def corpus() -> IdiomCorpus:
    return IdiomCorpus([make_example(*row) for row in SENTENCES], name="fixture")


@pytest.fixture(scope="session")
def model():
    return tiny_model(n_layers=2, n_heads=4, seed=0)


@pytest.fixture(scope="session")
def rotary_model():
    return tiny_model(n_layers=3, n_heads=2, d_model=16, positional_embedding_type="rotary", seed=1)


@pytest.fixture(scope="session")
def demo_out(tmp_path_factory):
    """``(folder, report path)`` of one offline ``run_demo``, shared by the demo and browser tests."""
    from idiomlens.demo import run_demo

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        out = tmp_path_factory.mktemp("demo")
        return out, run_demo(out, progress=False)
