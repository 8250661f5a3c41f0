"""Fixtures for the scoring tests: an edge-case corpus and synthetic aligned examples."""

from __future__ import annotations

import pytest
import torch

from idiomlens.data import AlignedExample, IdiomCorpus, align
from idiomlens.models import tiny_tokenizer

from ..conftest import SENTENCES, make_example

EDGE = [
    ("end-0", "The old farmer finally kicked the bucket", "kicked the bucket"),  # e = T-1
    ("only-0", "spilled the beans", "spilled the beans"),  # |L| = 0
    ("one-0", "He spilled the beans", "spilled the beans"),  # |L| = 1
    ("tok-0", "We ate the beans and the cake.", " the"),  # one-token idiom
    ("start-0", "Break a leg, she said.", "Break a leg"),  # s = p0
]


@pytest.fixture(scope="session")
def edge_corpus() -> IdiomCorpus:
    rows = [make_example(i, t, s, lab) for i, t, s, lab in SENTENCES]
    rows += [make_example(i, t, s) for i, t, s in EDGE]
    return IdiomCorpus(rows, name="edge")


@pytest.fixture(scope="session")
def edge_aligned(edge_corpus):
    aligned = align(edge_corpus, tiny_tokenizer())
    by_id = {a.id: a for a in aligned}
    # The corpus really covers the edge cases it claims to.
    assert by_id["end-0"].span[1] == len(by_id["end-0"]) - 1
    assert by_id["only-0"].span == (1, len(by_id["only-0"]) - 1)
    assert len(by_id["one-0"]) - 1 - (by_id["one-0"].span[1] - by_id["one-0"].span[0] + 1) == 1
    assert by_id["tok-0"].span[0] == by_id["tok-0"].span[1]
    assert by_id["start-0"].span[0] == 1
    return aligned


def synthetic(n: int, seed: int, *, vocab: int = 250, min_len: int = 4, max_len: int = 20):
    """Random aligned examples (BOS id 0 first) with random spans."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        T = int(torch.randint(min_len, max_len + 1, (1,), generator=gen))
        toks = (0, *torch.randint(1, vocab, (T - 1,), generator=gen).tolist())
        s = int(torch.randint(1, T, (1,), generator=gen))
        e = int(torch.randint(s, T, (1,), generator=gen))
        out.append(AlignedExample(f"syn-{i}", toks, (s, e), 1, "figurative", i, (), ""))
    return out
