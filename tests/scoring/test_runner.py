"""score_heads on real (tiny, random) models against the naive per-example reference."""

from __future__ import annotations

import pytest
import torch

from idiomlens.data import AlignedExample, AlignmentError
from idiomlens.models import tiny_model
from idiomlens.scoring import HeadScores, score_heads, score_heads_both
from idiomlens.scoring.features import FEATURE_NAMES

from .conftest import synthetic
from .naive_reference import naive_example


def naive_run(model, aligned, kind, layers=None):
    return torch.stack(
        [naive_example(model, a.tokens, *a.span, a.p0, kind, layers) for a in aligned]
    )


MODELS = {
    "standard": dict(n_layers=2, n_heads=4, seed=0),
    "rotary": dict(n_layers=3, n_heads=2, d_model=16, positional_embedding_type="rotary", seed=1),
    "attn_only": dict(n_layers=1, n_heads=3, d_head=4, attn_only=True, seed=5),
    "no_ln": dict(n_layers=2, n_heads=2, normalization_type=None, seed=7),
}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("kind", ["idiom", "literal"])
def test_score_heads_matches_naive(name, kind, edge_aligned):
    model = tiny_model(**MODELS[name])
    res = score_heads(model, edge_aligned, kind=kind, progress=False, batch_tokens=64)
    want = naive_run(model, edge_aligned, kind)
    assert res.ids == tuple(a.id for a in edge_aligned)
    assert res.feature_names == FEATURE_NAMES and res.kind == kind
    torch.testing.assert_close(res.features, want.float(), atol=1e-4, rtol=0)
    torch.testing.assert_close(res.scores, torch.sigmoid(want.float().sum(-1)), atol=1e-4, rtol=0)


def test_corpus_input_equals_aligned_input(model, edge_corpus, edge_aligned):
    a = score_heads(model, edge_corpus, progress=False)
    b = score_heads(model, edge_aligned, progress=False)
    assert a.ids == edge_corpus.ids
    torch.testing.assert_close(a.features, b.features, atol=0, rtol=0)


@pytest.mark.parametrize("kind", ["idiom", "literal"])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_batch_equals_one_by_one(rotary_model, model, kind, padding_side):
    aligned = synthetic(12, seed=3, max_len=24)
    for m in (model, rotary_model):
        batched = score_heads(m, aligned, kind=kind, padding_side=padding_side, progress=False)
        single = HeadScores.concat(
            [score_heads(m, [a], kind=kind, progress=False) for a in aligned]
        )
        assert batched.ids == single.ids
        torch.testing.assert_close(batched.features, single.features, atol=1e-5, rtol=0)


def test_layers_subset_and_stop(model, edge_aligned):
    full = score_heads(model, edge_aligned, progress=False)
    part = score_heads(model, edge_aligned, layers=[1], progress=False)
    assert part.layers == (1,) and part.features.shape[1] == 1
    torch.testing.assert_close(part.features[:, 0], full.features[:, 1])
    assert part.top(1)[0][0] == 1
    with pytest.raises(ValueError, match="layers"):
        score_heads(model, edge_aligned, layers=[5], progress=False)


def test_half_precision_runs_in_float32(edge_aligned):
    m16 = tiny_model(n_layers=2, n_heads=4, seed=0, dtype=torch.bfloat16)
    m32 = tiny_model(n_layers=2, n_heads=4, seed=0)
    r16 = score_heads(m16, edge_aligned, progress=False)
    r32 = score_heads(m32, edge_aligned, progress=False)
    assert r16.features.dtype == torch.float32 and torch.isfinite(r16.features).all()
    assert r16.meta["dtype"] == "torch.bfloat16"
    # mean / contribution are smooth in the weights: bf16 stays close to float32
    idx = [FEATURE_NAMES.index("mean"), FEATURE_NAMES.index("contribution")]
    torch.testing.assert_close(r16.features[..., idx], r32.features[..., idx], atol=0.03, rtol=0)


def test_too_long_is_an_error_naming_the_id(model):
    long = AlignedExample("too-long", (0,) + (5,) * 70, (1, 2), 1, "figurative", 0, (), "")
    ok = synthetic(2, seed=0)
    with pytest.raises(AlignmentError, match="too-long"):
        score_heads(model, [*ok, long], progress=False)


def test_bad_input(model, edge_aligned):
    with pytest.raises(ValueError, match="kind"):
        score_heads(model, edge_aligned, kind="figurative", progress=False)
    with pytest.raises(ValueError, match="empty"):
        score_heads(model, [], progress=False)


@pytest.mark.parametrize("kind", ["idiom", "literal"])
def test_memory_bounds_do_not_change_results(model, edge_aligned, kind):
    """A tiny token budget (one example per batch) and a tiny pattern budget (one head at
    a time) give the same features as one big batch, up to float32 rounding (on Intel
    CPUs MKL sums products of other shapes in another order: 3e-7 apart)."""
    big = score_heads(model, edge_aligned, kind=kind, batch_size=100, progress=False)
    small = score_heads(model, edge_aligned, kind=kind, batch_tokens=1, progress=False)
    chunked = score_heads(model, edge_aligned, kind=kind, max_pattern_cells=1, progress=False)
    torch.testing.assert_close(small.features, big.features, atol=1e-5, rtol=0)
    torch.testing.assert_close(chunked.features, big.features, atol=2e-6, rtol=0)


def test_both_kinds_from_one_forward_equal_separate_runs(rotary_model):
    aligned = synthetic(10, seed=11, max_len=20)
    calls = []
    handle = rotary_model.blocks[0].attn.hook_pattern.register_forward_hook(
        lambda *args: calls.append(1)
    )
    try:
        both = score_heads_both(rotary_model, aligned, progress=False, batch_tokens=64)
        n_batched = len(calls)
        calls.clear()
        separate = {
            kind: score_heads(rotary_model, aligned, kind=kind, progress=False, batch_tokens=64)
            for kind in ("idiom", "literal")
        }
    finally:
        handle.remove()
    assert n_batched * 2 == len(calls)  # one forward per batch instead of one per kind
    for kind, res in separate.items():
        assert both[kind].kind == kind and both[kind].ids == res.ids
        torch.testing.assert_close(both[kind].features, res.features, atol=0, rtol=0)
        assert both[kind].meta == res.meta
    with pytest.raises(TypeError, match="drop kind"):
        score_heads_both(rotary_model, aligned, kind="idiom")
