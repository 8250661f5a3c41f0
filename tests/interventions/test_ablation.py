"""Ablation hooks and ablate_heads against hand-written references."""

from __future__ import annotations

import pytest
import torch

from idiomlens.data import align
from idiomlens.interventions import (
    AblationResult,
    ablate_heads,
    ablation_hooks,
    last_word_tokens,
    mean_head_z,
    resample_donors,
)

TOKENS = torch.tensor([[0, 5, 6, 7, 8, 9], [0, 10, 11, 12, 13, 14]])
HEADS = [(0, 1), (1, 3)]


def _hand_hook(head, value=None, mask=None):
    """Set z[:, :, head] (optionally only where ``mask``) to ``value`` (0 by default)."""

    def hook(z, hook):
        z = z.clone()
        v = torch.zeros_like(z[:, :, head]) if value is None else value.expand_as(z[:, :, head])
        if mask is None:
            z[:, :, head] = v
        else:
            z[:, :, head][mask] = v[mask]
        return z

    return hook


def _hand_hooks(heads, value_fn=lambda layer, head: None, mask=None):
    return [
        (f"blocks.{layer}.attn.hook_z", _hand_hook(head, value_fn(layer, head), mask))
        for layer, head in heads
    ]


def _logits(model, tokens, hooks):
    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=hooks)


def test_zero_ablation_equals_zeroing_by_hand(model):
    ours = _logits(model, TOKENS, ablation_hooks(HEADS, kind="zero"))
    assert torch.equal(ours, _logits(model, TOKENS, _hand_hooks(HEADS)))
    assert not torch.allclose(ours, _logits(model, TOKENS, []))
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0, 2:4], mask[1, 5] = True, True
    ours = _logits(model, TOKENS, ablation_hooks(HEADS, positions=mask))
    assert torch.equal(ours, _logits(model, TOKENS, _hand_hooks(HEADS, mask=mask)))


def test_mean_head_z_and_mean_ablation(model, corpus):
    zs = {layer: [] for layer in range(model.cfg.n_layers)}
    for ex in align(corpus, model):
        names = [f"blocks.{i}.attn.hook_z" for i in range(model.cfg.n_layers)]
        _, cache = model.run_with_cache(torch.tensor([ex.tokens]), names_filter=names)
        for layer in zs:
            zs[layer].append(cache[names[layer]][0])
    ref = torch.stack([torch.cat(zs[layer]).mean(0) for layer in zs])  # [layer, head, d_head]
    means = mean_head_z(model, corpus, batch_tokens=64)
    assert torch.allclose(means, ref, atol=1e-6)
    ours = _logits(model, TOKENS, ablation_hooks(HEADS, kind="mean", means=means))
    hand = _hand_hooks(HEADS, lambda layer, head: means[layer, head])
    assert torch.equal(ours, _logits(model, TOKENS, hand))


def test_resample_hooks_insert_the_donor(model):
    gen = torch.Generator().manual_seed(0)
    donor = {layer: torch.randn(2, 6, 4, 8, generator=gen) for layer in (0, 1)}
    ours = _logits(model, TOKENS, ablation_hooks(HEADS, kind="resample", donor_z=donor))
    hand = [
        (f"blocks.{layer}.attn.hook_z", _hand_hook(head, donor[layer][:, :, head]))
        for layer, head in HEADS
    ]
    assert torch.equal(ours, _logits(model, TOKENS, hand))
    with pytest.raises(ValueError, match="donor z of layer"):
        _logits(model, TOKENS[:1], ablation_hooks(HEADS, kind="resample", donor_z=donor))


def test_resample_donors_are_deranged_and_chunk_free():
    ref = [f"ex{i}" for i in range(7)]
    donors = resample_donors(ref, ref, seed=3)
    assert sorted(donors) == list(range(7)) and all(d != j for j, d in enumerate(donors))
    assert resample_donors(ref[2:5], ref, seed=3) == donors[2:5]
    assert resample_donors(["new"], ref, seed=3) == resample_donors(["new", "ex0"], ref, 3)[:1]
    assert resample_donors(ref, ref, seed=4) != donors


def _reference_metrics(model, ex, word, hooks, greedy=True):
    """METHODS.md metrics of one example computed directly, greedy by explicit decoding."""
    tokens = torch.tensor([ex.tokens])
    k1, km = word
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        logits, loss = model(tokens, return_type="both")
        prompt = list(ex.tokens[:k1])
        for _ in range(km - k1 + 1 if greedy else 0):  # greedy continuation of m tokens
            prompt.append(int(model(torch.tensor([prompt]))[0, -1].argmax()))
    logprobs = torch.log_softmax(logits[0], -1)
    t1 = ex.tokens[k1]
    last = logits[0, k1 - 1]
    return {
        "logit": float(last[t1]),
        "logprob": sum(float(logprobs[p - 1, ex.tokens[p]]) for p in range(k1, km + 1)),
        "loss": float(loss),
        "nwp_correct": prompt[k1:] == list(ex.tokens[k1 : km + 1]),
        "rank": int((last > last[t1]).sum() + (last[:t1] == last[t1]).sum()),
    }


def test_every_metric_matches_a_direct_computation(model, corpus):
    conditions = {"one": (0, 2), "group": [(0, 0), (1, 1), (1, 3)]}
    res = ablate_heads(model, corpus, conditions, progress=False)
    assert res.conditions == ("one", "group") and res.ids == corpus.ids
    for i in (0, 7):
        ex = align(corpus[i : i + 1], model)[0]
        word = last_word_tokens(ex, corpus[i].span)
        clean = _reference_metrics(model, ex, word, [])
        assert float(res.clean_logprob[i]) == pytest.approx(clean["logprob"], abs=1e-4)
        assert float(res.clean_loss[i]) == pytest.approx(clean["loss"], abs=1e-5)
        assert bool(res.clean_nwp_correct[i]) == clean["nwp_correct"]
        assert int(res.clean_rank[i]) == clean["rank"]
        for c, heads in enumerate(conditions.values()):
            abl = _reference_metrics(model, ex, word, ablation_hooks(heads))
            assert float(res.logit_diff[i, c]) == pytest.approx(
                clean["logit"] - abl["logit"], abs=1e-4
            )
            assert float(res.logprob_diff[i, c]) == pytest.approx(
                clean["logprob"] - abl["logprob"], abs=1e-4
            )
            assert float(res.loss_diff[i, c]) == pytest.approx(
                abl["loss"] - clean["loss"], abs=1e-5
            )
            assert bool(res.nwp_correct[i, c]) == abl["nwp_correct"]
            assert int(res.rank[i, c]) == abl["rank"]


def test_last_word_keeps_its_leading_space(model, corpus):
    for ex, al in zip(corpus, align(corpus, model), strict=True):
        k1, km = last_word_tokens(al, ex.span)
        word = al.text[al.offsets[k1][0] : al.offsets[km][1]]
        assert word.strip() == ex.idiom.split()[-1] and al.span[0] <= k1 <= km == al.span[1]


@pytest.mark.parametrize("positions", ["idiom", "literal"])
def test_position_sets_are_respected(model, corpus, positions):
    res = ablate_heads(model, corpus[:2], [(0, 3)], positions=positions, progress=False)
    for i in range(2):
        ex = align(corpus[i : i + 1], model)[0]
        s, e = ex.span
        pos = torch.arange(len(ex.tokens))
        mask = (pos >= s) & (pos <= e)
        mask = mask if positions == "idiom" else ~mask & (pos >= ex.p0)
        word = last_word_tokens(ex, corpus[i].span)
        hooks = _hand_hooks([(0, 3)], mask=mask[None])
        abl = _reference_metrics(model, ex, word, hooks, greedy=False)
        clean = _reference_metrics(model, ex, word, [], greedy=False)
        assert float(res.logprob_diff[i, 0]) == pytest.approx(
            clean["logprob"] - abl["logprob"], abs=1e-4
        )


@pytest.mark.parametrize("kind", ["zero", "mean", "resample"])
def test_stacked_equals_alone_and_chunks_equal_whole(model, corpus, kind):
    conditions = {"a": (0, 0), "b": [(0, 1), (1, 2)], "c": (1, 0)}
    small = corpus[:5]
    whole = ablate_heads(model, small, conditions, kind=kind, progress=False, seed=1)
    # 25 tokens: one example per batch and at most 2 conditions per forward
    tight = ablate_heads(
        model, small, conditions, kind=kind, progress=False, seed=1, batch_tokens=25
    )
    for name in ("logit_diff", "logprob_diff", "loss_diff"):
        assert torch.allclose(getattr(whole, name), getattr(tight, name), atol=1e-4)
    alone = ablate_heads(model, small, {"b": conditions["b"]}, kind=kind, progress=False, seed=1)
    assert torch.allclose(whole.logprob_diff[:, 1], alone.logprob_diff[:, 0], atol=1e-4)
    parts = [
        ablate_heads(
            model, small[a:b], conditions, kind=kind, reference=small, seed=1, progress=False
        )
        for a, b in ((0, 2), (2, 5))
    ]
    joined = AblationResult.concat(parts)
    assert joined.ids == whole.ids
    assert torch.allclose(joined.logprob_diff, whole.logprob_diff, atol=1e-4)
    assert torch.equal(joined.nwp_correct, whole.nwp_correct)
    assert not torch.allclose(whole.logprob_diff, torch.zeros(()))


def test_resample_uses_the_donor_activations(model, corpus):
    res = ablate_heads(model, corpus[:3], [(1, 1)], kind="resample", seed=5, progress=False)
    donors = resample_donors(corpus.ids[:3], corpus.ids[:3], seed=5)
    ex, donor = (align(corpus[j : j + 1], model)[0] for j in (0, donors[0]))
    _, cache = model.run_with_cache(
        torch.tensor([donor.tokens]), names_filter=["blocks.1.attn.hook_z"]
    )
    src = torch.clamp(torch.arange(len(ex.tokens)), max=len(donor.tokens) - 1)
    donor_z = cache["blocks.1.attn.hook_z"][:, src, 1]  # [1, pos, d_head], clipped
    word = last_word_tokens(ex, corpus[0].span)
    hooks = [("blocks.1.attn.hook_z", _hand_hook(1, donor_z))]
    abl = _reference_metrics(model, ex, word, hooks, greedy=False)
    clean = _reference_metrics(model, ex, word, [], greedy=False)
    assert float(res.logit_diff[0, 0]) == pytest.approx(clean["logit"] - abl["logit"], abs=1e-4)


def test_bad_input_gets_clear_errors(model, corpus):
    with pytest.raises(ValueError, match="out of range"):
        ablate_heads(model, corpus[:1], [(0, 4)], progress=False)
    with pytest.raises(ValueError, match="duplicate condition names"):
        ablate_heads(model, corpus[:1], [("x", (0, 1)), ("x", (1, 1))], progress=False)
    with pytest.raises(ValueError, match="no ablation conditions"):
        ablate_heads(model, corpus[:1], {}, progress=False)
    with pytest.raises(ValueError, match="unknown ablation kind"):
        ablate_heads(model, corpus[:1], [(0, 1)], kind="noise", progress=False)
    with pytest.raises(ValueError, match="positions"):
        ablate_heads(model, corpus[:1], [(0, 1)], positions="bos", progress=False)
    with pytest.raises(ValueError, match="out of range"):
        _logits(model, TOKENS, ablation_hooks([(0, 9)]))
    with pytest.raises(ValueError, match="needs means"):
        ablation_hooks(HEADS, kind="mean")


def test_result_tables_plot_and_roundtrip(model, corpus, tmp_path):
    res = ablate_heads(model, corpus[:4], {"a": (0, 1), "b": [(1, 0), (1, 1)]}, progress=False)
    df = res.to_dataframe()
    assert len(df) == 8 and list(df.columns[:3]) == ["id", "condition", "logit_diff"]
    row = df[(df.id == corpus.ids[2]) & (df.condition == "b")].iloc[0]
    assert row.logprob_diff == pytest.approx(float(res.logprob_diff[2, 1]))
    summary = res.summary().set_index("condition")
    assert summary.loc["b", "accuracy"] == pytest.approx(
        float(res.nwp_correct[:, 1].float().mean())
    )
    assert summary.loc["a", "logit_diff"] == pytest.approx(float(res.logit_diff[:, 0].mean()))
    assert res.heads("b") == [(1, 0), (1, 1)]
    fig = res.plot("loss_diff")
    assert list(fig.data[0].y) == pytest.approx(res.loss_diff.mean(0).tolist())
    back = AblationResult.load(res.save(tmp_path / "abl"))
    assert back.conditions == res.conditions and back.kind == "zero"
    assert torch.equal(back.rank, res.rank) and torch.equal(back.nwp_correct, res.nwp_correct)


@pytest.mark.parametrize("kind", ["zero", "mean", "resample"])
def test_aligned_input_and_one_by_one(model, corpus, kind):
    """Aligned input (corpus and reference) equals raw input; any batch budget, and one
    example at a time, give the same metrics."""
    small, conditions = corpus[:4], {"a": (0, 1), "b": [(1, 0), (1, 2)]}
    aligned = align(small, model)
    raw = ablate_heads(model, small, conditions, kind=kind, seed=2, progress=False)
    pre = ablate_heads(
        model, aligned, conditions, kind=kind, reference=aligned, seed=2, progress=False
    )
    tiny = ablate_heads(
        model, aligned, conditions, kind=kind, seed=2, batch_tokens=1, progress=False
    )
    single = AblationResult.concat(
        [
            ablate_heads(model, [a], conditions, kind=kind, reference=small, seed=2, progress=False)
            for a in aligned
        ]
    )
    assert raw.ids == pre.ids == tiny.ids == single.ids == small.ids
    for res in (pre, tiny, single):
        for name in ("logit_diff", "logprob_diff", "loss_diff", "clean_loss"):
            torch.testing.assert_close(getattr(res, name), getattr(raw, name), atol=1e-4, rtol=0)
        assert torch.equal(res.nwp_correct, raw.nwp_correct)
        assert torch.equal(res.n_word_tokens, raw.n_word_tokens)
    assert pre.meta["kind"] == kind and pre.meta["n_examples"] == 4


def test_aligned_examples_without_a_char_span_are_named(model):
    from idiomlens.data import AlignedExample

    bare = AlignedExample("no-chars", (0, 5, 6, 7), (1, 2), 1, "figurative", 0, (), "")
    with pytest.raises(ValueError, match="no-chars"):
        ablate_heads(model, [bare], [(0, 1)], progress=False)
