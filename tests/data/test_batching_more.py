"""iter_batches / make_batch / Batch: budgets, caps, padding sides, order, devices."""

from __future__ import annotations

import pytest
import torch

from idiomlens.data import IdiomExample, align, iter_batches, load_epie, make_batch
from idiomlens.models import tiny_tokenizer


@pytest.fixture(scope="module")
def aligned(epie_root):
    return align(load_epie(epie_root, "formal"), tiny_tokenizer())


def _indices(batches):
    return [i for b in batches for i in b.indices.tolist()]


def test_long_example_gets_its_own_batch(corpus):
    long = IdiomExample("long", "word " * 30 + "spilled the beans", (150, 167))
    al = align([*corpus, long], tiny_tokenizer())
    n_long = len(al[-1])
    budget = n_long - 1
    batches = list(iter_batches(al, batch_tokens=budget))
    [own] = [b for b in batches if "long" in b.ids]
    assert own.ids == ("long",) and own.tokens.shape == (1, n_long)
    assert all(b.tokens.numel() <= budget for b in batches if b is not own)
    assert sorted(_indices(batches)) == list(range(len(al)))


@pytest.mark.parametrize("cap", [1, 3, 7])
def test_batch_size_caps_examples(aligned, cap):
    batches = list(iter_batches(aligned, batch_size=cap, batch_tokens=10**6))
    assert all(b.size <= cap for b in batches)
    assert len(batches) == -(-len(aligned) // cap)  # the budget never binds here
    assert sorted(_indices(batches)) == list(range(len(aligned)))


def test_length_grouping_is_longest_first_and_stable(aligned):
    order = _indices(iter_batches(aligned, batch_size=4))
    lengths = [len(aligned[i]) for i in order]
    assert lengths == sorted(lengths, reverse=True)
    ties = [(len(aligned[i]), i) for i in order]
    assert ties == sorted(ties, key=lambda t: (-t[0], t[1]))  # ties keep corpus order
    unsorted = _indices(iter_batches(aligned, batch_size=4, sort_by_length=False))
    assert unsorted == list(range(len(aligned)))


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_spans_and_positions(aligned, side):
    for batch in iter_batches(aligned, batch_tokens=120, padding_side=side):
        width = batch.n_pos
        for b, i in enumerate(batch.indices.tolist()):
            ex, t = aligned[i], len(aligned[i])
            start = width - t if side == "left" else 0
            assert int(batch.offsets[b]) == start
            assert batch.tokens[b, start : start + t].tolist() == list(ex.tokens)
            pad = torch.ones(width, dtype=torch.bool)
            pad[start : start + t] = False
            assert (batch.tokens[b][pad] == 0).all() and (batch.attention_mask[b][pad] == 0).all()
            assert batch.spans[b].tolist() == [ex.span[0] + start, ex.span[1] + start]
            # positions() maps padded slots back to real positions
            pos = batch.positions()[b]
            assert pos[batch.spans[b]].tolist() == list(ex.span)
            assert batch.scored_mask()[b].sum() == t - ex.p0
        assert batch.forward_kwargs() == (
            {"attention_mask": batch.attention_mask} if side == "left" else {}
        )


def test_results_scatter_back_to_corpus_order(aligned):
    """A per-example statistic computed batch-wise and scattered by indices equals the
    one computed example by example."""
    out = torch.full((len(aligned),), -1.0)
    for batch in iter_batches(aligned, batch_tokens=64, padding_side="left"):
        idiom_sum = (batch.tokens * batch.idiom_mask()).sum(-1).float()
        out[batch.indices] = idiom_sum
    ref = torch.tensor([float(sum(a.tokens[a.span[0] : a.span[1] + 1])) for a in aligned])
    torch.testing.assert_close(out, ref)


def test_device_move_keeps_fields(aligned):
    batch = make_batch(aligned[:3])
    moved = batch.to("meta")
    for name, value in batch.__dict__.items():
        other = getattr(moved, name)
        if isinstance(value, torch.Tensor):
            assert other.device.type == "meta" and other.shape == value.shape
        else:
            assert other == value
    on_cpu = next(iter_batches(aligned, device="cpu"))
    assert on_cpu.tokens.device.type == "cpu"
    assert make_batch(aligned[:2], device="meta").spans.device.type == "meta"


def test_bad_batching_arguments(aligned):
    with pytest.raises(ValueError, match="positive"):
        list(iter_batches(aligned, batch_tokens=0))
    with pytest.raises(ValueError, match="positive"):
        list(iter_batches(aligned, batch_size=0))
    with pytest.raises(ValueError, match="padding_side"):
        make_batch(aligned[:1], padding_side="middle")
    with pytest.raises(ValueError, match="zero examples"):
        make_batch([])
    assert list(iter_batches([])) == []
