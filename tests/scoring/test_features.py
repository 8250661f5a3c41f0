"""The batched feature functions equal the naive METHODS.md reference on constructed patterns."""

from __future__ import annotations

import pytest
import torch

from idiomlens.data import AlignedExample, make_batch
from idiomlens.scoring.features import (
    FEATURE_NAMES,
    ScoringLayout,
    attention_features,
    head_features,
    head_output_share,
    output_gram,
)

from .naive_reference import idiom_features, literal_features, naive_share

NAIVE = {"idiom": idiom_features, "literal": literal_features}


def example(ex_id: str, T: int, span: tuple[int, int], p0: int = 1) -> AlignedExample:
    tokens = tuple(range(3, 3 + T))
    return AlignedExample(ex_id, tokens, span, p0, "figurative", 0, ((0, 0),) * T, "")


# (T, s, e, p0): spans at start and end, one-token idioms, |L| = 0 and 1, no BOS.
CASES = [
    (8, 3, 5, 1),
    (8, 1, 2, 1),  # s = p0
    (8, 6, 7, 1),  # e = T - 1
    (5, 2, 2, 1),  # one-token idiom
    (5, 1, 4, 1),  # |L| = 0
    (4, 1, 2, 1),  # |L| = 1
    (2, 1, 1, 1),  # BOS + one idiom token
    (6, 0, 1, 0),  # no BOS, span at 0
    (7, 3, 3, 0),
    (12, 4, 9, 1),
]


def random_pattern(gen: torch.Generator, B: int, H: int, P: int, ties: bool) -> torch.Tensor:
    if ties:  # few distinct values -> many exact ties
        raw = torch.randint(0, 3, (B, H, P, P), generator=gen).float()
    else:
        raw = torch.randn(B, H, P, P, generator=gen).exp()
    raw = torch.tril(raw)
    return raw / raw.sum(-1, keepdim=True).clamp(min=1e-9)


def real_block(pattern: torch.Tensor, batch, b: int) -> torch.Tensor:
    o, T = int(batch.offsets[b]), int(batch.lengths[b])
    return pattern[b, :, o : o + T, o : o + T]


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("kind", ["idiom", "literal"])
@pytest.mark.parametrize("ties", [False, True])
def test_features_match_naive(padding_side, kind, ties):
    gen = torch.Generator().manual_seed(hash((padding_side, kind, ties)) % 2**31)
    exs = [example(f"ex{i}", T, (s, e), p0) for i, (T, s, e, p0) in enumerate(CASES)]
    batch = make_batch(exs, padding_side=padding_side)
    B, P, H, d_head, d_model = batch.size, batch.n_pos, 3, 4, 6
    pattern = random_pattern(gen, B, H, P, ties)
    # Garbage in padding cells must not matter.
    pattern = torch.where(batch.real_mask()[:, None, :, None], pattern, 7.0)
    z = torch.randn(B, P, H, d_head, generator=gen)
    z[0, 2, 1] = 0.0
    z[1, 3] = 0.0  # a position where every head outputs zero: share 0
    W_O = torch.randn(H, d_head, d_model, generator=gen)
    got = head_features(pattern, z, W_O, batch, kind)
    assert got.shape == (B, H, len(FEATURE_NAMES))
    for b, (T, s, e, p0) in enumerate(CASES):
        o = int(batch.offsets[b])
        share = naive_share(z[b, o : o + T], W_O)
        block = real_block(pattern, batch, b)
        for h in range(H):
            want = NAIVE[kind](block[h].tolist(), s, e, p0, [sh[h] for sh in share])
            torch.testing.assert_close(
                got[b, h], torch.tensor(want), atol=1e-5, rtol=1e-5, msg=f"case {b}, head {h}"
            )


def test_uniform_rows_tie_rules():
    """Uniform attention: every argmax is the first candidate (BOS) -> max = 0."""
    ex = example("u", 6, (2, 3))
    batch = make_batch([ex])
    A = torch.tril(torch.ones(6, 6))
    A = (A / A.sum(-1, keepdim=True))[None, None]
    for kind in ("idiom", "literal"):
        got = attention_features(A, ScoringLayout.from_batch(batch, kind))[0, 0]
        want = NAIVE[kind](A[0, 0].tolist(), 2, 3, 1)[:4]
        torch.testing.assert_close(got, torch.tensor(want), atol=1e-6, rtol=0)
    # rows argmax -> BOS (not an item): row part of max is 0 for the idiom score
    assert attention_features(A, ScoringLayout.from_batch(batch, "idiom"))[0, 0, 2] < 0.5


def test_mode_tie_takes_smaller_value():
    """Two modes with equal counts: the smaller position wins (here the idiom token)."""
    ex = example("m", 5, (1, 1))
    A = torch.zeros(5, 5)
    A[0, 0] = 1
    A[1, 1] = 1  # row 1 -> 1 (item)
    A[2, 1] = 1  # row 2 -> 1
    A[3, 3] = 1  # row 3 -> 3
    A[4, 3] = 1  # row 4 -> 3
    got = attention_features(A[None, None], ScoringLayout.from_batch(make_batch([ex]), "idiom"))
    want = idiom_features(A.tolist(), 1, 1, 1)
    torch.testing.assert_close(got[0, 0], torch.tensor(want[:4]))
    # q2k: rows 1..4 -> mode {1: 2, 3: 2} -> 1 in I -> 2/4
    assert got[0, 0, 2] > 0


def test_share_matches_direct_norm():
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(2, 5, 4, 8, generator=gen)
    W_O = torch.randn(4, 8, 16, generator=gen)
    r = torch.einsum("bphd,hdm->bphm", z, W_O).norm(dim=-1)
    torch.testing.assert_close(head_output_share(z, output_gram(W_O)), r / r.sum(-1, keepdim=True))


def test_bad_kind():
    with pytest.raises(ValueError, match="kind"):
        ScoringLayout.from_batch(make_batch([example("x", 4, (1, 2))]), "figurative")


@pytest.mark.parametrize("kind", ["idiom", "literal"])
def test_random_layouts_match_naive(kind):
    """Many random lengths and spans, BOS or not, tie-heavy and tie-free patterns in one
    batch: every line group (top-K, one other candidate, none) meets the reference."""
    gen = torch.Generator().manual_seed(17 if kind == "idiom" else 18)
    cases = []
    for _ in range(40):
        p0 = int(torch.randint(0, 2, (1,), generator=gen))
        T = int(torch.randint(p0 + 1, 16, (1,), generator=gen))
        s = int(torch.randint(p0, T, (1,), generator=gen))
        e = int(torch.randint(s, T, (1,), generator=gen))
        cases.append((T, s, e, p0))
    batch = make_batch([example(f"r{i}", T, (s, e), p0) for i, (T, s, e, p0) in enumerate(cases)])
    ties = random_pattern(gen, batch.size, 2, batch.n_pos, ties=True)
    smooth = random_pattern(gen, batch.size, 2, batch.n_pos, ties=False)
    pattern = torch.cat([ties, smooth], dim=1)  # heads 0-1 tied, 2-3 not
    layout = ScoringLayout.from_batch(batch, kind)
    got = attention_features(pattern, layout)
    lines = (layout.rows, layout.cols)
    assert sum(ls.n_ranked for ls in lines) and sum(ls.n_single for ls in lines)
    assert sum(len(ls.b) - ls.n_ranked - ls.n_single for ls in lines)  # no top-K needed
    for b, (_, s, e, p0) in enumerate(cases):
        block = real_block(pattern, batch, b)
        for h in range(4):
            want = NAIVE[kind](block[h].tolist(), s, e, p0)[:4]
            torch.testing.assert_close(
                got[b, h], torch.tensor(want), atol=1e-5, rtol=1e-5, msg=f"case {b}, head {h}"
            )
