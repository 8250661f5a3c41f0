"""Exact activation patching: equality with TransformerLens and with hand-written loops."""

from __future__ import annotations

import pytest
import torch
from jaxtyping import TypeCheckError
from transformer_lens import patching as tl_patching

from idiomlens.interventions import (
    PATCH_KINDS,
    PatchingResult,
    patch,
    patch_attn_out,
    patch_heads,
    patch_mlp_out,
    patch_resid_pre,
)
from idiomlens.interventions.patching import cell_masks, check_pair, patch_activation
from idiomlens.interventions.patching_runner import shared_prefix
from idiomlens.models import tiny_model

TL_FUNCTIONS = {
    "head_all_pos": tl_patching.get_act_patch_attn_head_out_all_pos,
    "head_by_pos": tl_patching.get_act_patch_attn_head_out_by_pos,
    "resid_pre": tl_patching.get_act_patch_resid_pre,
    "attn_out": tl_patching.get_act_patch_attn_out,
    "mlp_out": tl_patching.get_act_patch_mlp_out,
}


def token_pair(model, batch=2, n_pos=6, seed=0):
    """BOS-prefixed random tokens; corrupted differs at two positions."""
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(1, model.cfg.d_vocab, (batch, n_pos), generator=gen)
    clean[:, 0] = 0  # BOS, as with prepend_bos
    corrupted = clean.clone()
    corrupted[:, 2] = torch.randint(1, model.cfg.d_vocab, (batch,), generator=gen)
    corrupted[:, 4] = torch.randint(1, model.cfg.d_vocab, (batch,), generator=gen)
    return clean, corrupted


def last_logit_diff(logits):
    return (logits[:, -1, 3] - logits[:, -1, 7]).mean()


def mean_logprob(logits):
    return logits.log_softmax(-1)[:, 1:, 5].mean()


def item_metric(logits):
    """Not vmappable (calls .item()): exercises the per-cell fallback."""
    scale = float(logits.new_ones(()).item())
    return scale * (logits[:, -1, 3] - logits[:, -1, 7]).mean()


@pytest.fixture(scope="module", params=["model", "rotary_model"])
def any_model(request):
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("kind", sorted(TL_FUNCTIONS))
@pytest.mark.parametrize("metric", [last_logit_diff, mean_logprob], ids=["logitdiff", "logprob"])
def test_equals_transformer_lens(any_model, kind, metric):
    clean, corrupted = token_pair(any_model)
    _, clean_cache = any_model.run_with_cache(clean)
    expected = TL_FUNCTIONS[kind](any_model, corrupted, clean_cache, metric)
    result = patch(any_model, clean, corrupted, metric, kind=kind)
    assert result.effects.shape == expected.shape
    assert result.axes == PATCH_KINDS[kind].axes
    torch.testing.assert_close(result.effects, expected.cpu(), atol=1e-5, rtol=0)
    assert result.corrupted_metric == pytest.approx(
        float(metric(any_model(corrupted)).detach()), abs=1e-5
    )
    assert result.clean_metric == pytest.approx(float(metric(any_model(clean)).detach()), abs=1e-5)


def test_wrappers_and_chunking_agree(model):
    clean, corrupted = token_pair(model, batch=3, n_pos=5, seed=1)
    ref = patch_heads(model, clean, corrupted, last_logit_diff, by_position=True)
    for cells in (1, 3, 1000):
        got = patch_heads(
            model, clean, corrupted, last_logit_diff, by_position=True, cells_per_forward=cells
        )
        torch.testing.assert_close(got.effects, ref.effects, atol=1e-5, rtol=0)
    for fn, kind in [
        (patch_resid_pre, "resid_pre"),
        (patch_attn_out, "attn_out"),
        (patch_mlp_out, "mlp_out"),
    ]:
        a = fn(model, clean, corrupted, last_logit_diff, cells_per_forward=2)
        b = patch(model, clean, corrupted, last_logit_diff, kind=kind)
        assert a.kind == kind
        torch.testing.assert_close(a.effects, b.effects, atol=1e-5, rtol=0)


def test_non_vmappable_metric_falls_back(model):
    clean, corrupted = token_pair(model)
    a = patch_heads(model, clean, corrupted, item_metric)
    b = patch_heads(model, clean, corrupted, last_logit_diff)
    torch.testing.assert_close(a.effects, b.effects, atol=1e-6, rtol=0)


def test_layers_subset(model):
    clean, corrupted = token_pair(model)
    full = patch_heads(model, clean, corrupted, last_logit_diff)
    part = patch_heads(model, clean, corrupted, last_logit_diff, layers=[1])
    assert torch.isnan(part.effects[0]).all()
    with pytest.raises(ValueError, match="outside the model"):
        patch_heads(model, clean, corrupted, last_logit_diff, layers=[2])
    torch.testing.assert_close(part.effects[1], full.effects[1], atol=1e-6, rtol=0)


def reference_left_padded(model, clean, corrupted, mask, metric):
    """One forward per head, all positions, with an explicit attention mask."""
    _, cache = model.run_with_cache(clean, attention_mask=mask)
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        name = f"blocks.{layer}.attn.hook_z"
        for head in range(model.cfg.n_heads):

            def hook(z, hook, head=head, name=name):
                z = z.clone()
                z[:, :, head] = cache[name][:, :, head]
                return z

            logits = model.run_with_hooks(corrupted, attention_mask=mask, fwd_hooks=[(name, hook)])
            out[layer, head] = metric(logits)
    return out


def test_left_padding_with_attention_mask(model):
    clean, corrupted = token_pair(model, batch=2, n_pos=6, seed=3)
    clean[0, :2] = corrupted[0, :2] = 0  # row 0 is left-padded by two
    mask = torch.ones_like(clean)
    mask[0, :2] = 0
    got = patch_heads(model, clean, corrupted, last_logit_diff, attention_mask=mask)
    expected = reference_left_padded(model, clean, corrupted, mask, last_logit_diff)
    torch.testing.assert_close(got.effects, expected, atol=1e-5, rtol=0)


def test_length_mismatch_and_bad_kind(model):
    clean, corrupted = token_pair(model)
    # the shape annotation (checked by jaxtyping under pytest) or check_pair rejects it
    with pytest.raises((ValueError, TypeCheckError)):
        patch_heads(model, clean, corrupted[:, :-1], last_logit_diff)
    with pytest.raises(ValueError, match=r"same \[batch, pos\] shape.*\(2, 6\).*\(2, 5\)"):
        check_pair(clean, corrupted[:, :-1])
    with pytest.raises(TypeError, match="integer token ids"):
        check_pair(clean.float(), corrupted.float())
    with pytest.raises(ValueError, match="unknown patching kind"):
        patch(model, clean, corrupted, last_logit_diff, kind="pattern")


def test_one_dimensional_tokens_are_a_batch_of_one(model):
    clean, corrupted = token_pair(model, batch=1)
    a = patch_heads(model, clean[0], corrupted[0], last_logit_diff)
    b = patch_heads(model, clean, corrupted, last_logit_diff)
    torch.testing.assert_close(a.effects, b.effects)


def test_pure_core():
    masks = cell_masks("head_all_pos", n_pos=3, n_heads=2)
    assert masks.shape == (2, 3, 2)
    assert masks[0, :, 0].all() and not masks[0, :, 1].any()
    by_pos = cell_masks("head_by_pos", n_pos=3, n_heads=2)
    assert by_pos.shape == (6, 3, 2) and (by_pos.sum((1, 2)) == 1).all()
    assert by_pos[3, 1, 1]  # cell 3 = (pos 1, head 1)
    resid = cell_masks("resid_pre", n_pos=3, n_heads=2)
    assert resid.shape == (3, 3, 1)
    # two cells x batch 2 of z [batch, pos, head, d_head]
    corrupted = torch.zeros(4, 3, 2, 5)
    clean = torch.arange(2 * 3 * 2 * 5, dtype=torch.float).reshape(2, 3, 2, 5) + 1
    out = patch_activation(corrupted, clean, masks)
    expected = torch.zeros(2, 2, 3, 2, 5)
    expected[0, :, :, 0] = clean[:, :, 0]
    expected[1, :, :, 1] = clean[:, :, 1]
    torch.testing.assert_close(out, expected.reshape(4, 3, 2, 5))


def test_result_methods(model, tmp_path):
    clean, corrupted = token_pair(model)
    result = patch_heads(
        model, clean, corrupted, last_logit_diff, by_position=True, ids=("a|b", "c|d")
    )
    change = result.effects - result.corrupted_metric
    torch.testing.assert_close(result.change, change)
    denom = result.clean_metric - result.corrupted_metric
    torch.testing.assert_close(result.recovered, change / denom)
    n_layers, n_pos, n_heads = result.effects.shape
    assert len(result.labels) == n_layers * n_pos * n_heads
    assert result.labels[n_heads + 1] == "L0P1H1"
    top = result.top(5)
    flat = change.flatten()
    expected = torch.sort(flat.abs(), descending=True, stable=True).indices[:5]
    assert [label for label, _ in top] == [result.labels[i] for i in expected.tolist()]
    assert [v for _, v in top] == pytest.approx(flat[expected].tolist())
    frame = result.to_dataframe()
    assert len(frame) == flat.numel()
    row = frame[(frame["layer"] == 1) & (frame["pos"] == 2) & (frame["head"] == 3)].iloc[0]
    assert row.effect == pytest.approx(float(result.effects[1, 2, 3]))
    loaded = PatchingResult.load(result.save(tmp_path / "r"))
    assert loaded.ids == ("a|b", "c|d") and loaded.axes == result.axes
    assert loaded.kind == "head_by_pos" and loaded.clean_metric == result.clean_metric
    torch.testing.assert_close(loaded.effects, result.effects)
    fig = result.plot(value="recovered")
    assert fig.data[0].z is not None and len(fig.data[0].y) == n_layers * n_heads


def test_result_validates_axes():
    with pytest.raises(ValueError, match="do not match axes"):
        PatchingResult(torch.zeros(2, 3), "head_by_pos", ("layer", "pos", "head"), 1.0, 0.0)


@pytest.mark.parametrize("first_diff", [0, 5])
@pytest.mark.parametrize("kind", ["head_all_pos", "head_by_pos", "mlp_out"])
def test_shared_prefix_shortcut_is_exact(model, kind, first_diff):
    """Cells inside the shared prefix are skipped and its logits reused: still equal to TL."""
    clean, corrupted = token_pair(model, batch=2, n_pos=7, seed=4)
    corrupted = clean.clone()
    corrupted[1, first_diff] = (clean[1, first_diff] + 1) % model.cfg.d_vocab
    assert shared_prefix(clean, corrupted) == first_diff
    _, clean_cache = model.run_with_cache(clean)
    expected = TL_FUNCTIONS[kind](model, corrupted, clean_cache, mean_logprob)
    got = patch(model, clean, corrupted, mean_logprob, kind=kind, cells_per_forward=3)
    torch.testing.assert_close(got.effects, expected.cpu(), atol=1e-5, rtol=0)


def test_identical_inputs_need_no_patched_forward(model):
    clean, _ = token_pair(model)
    assert shared_prefix(clean, clean) == clean.shape[1]
    result = patch_heads(model, clean, clean, last_logit_diff, by_position=True)
    assert (result.effects == result.corrupted_metric).all()
    assert result.clean_metric == result.corrupted_metric


@pytest.mark.parametrize("norm,cap", [("RMS", 0.0), (None, 0.0), ("LN", 2.0)])
def test_model_head_variants(norm, cap):
    """Our unembedding path (final norm, W_U, b_U, soft-cap) matches the model's forward."""
    model = tiny_model(n_layers=2, n_heads=2, d_model=16, normalization_type=norm, seed=5)
    model.cfg.output_logits_soft_cap = cap
    clean, corrupted = token_pair(model, n_pos=5, seed=6)
    _, clean_cache = model.run_with_cache(clean)
    for kind in ("head_by_pos", "resid_pre"):
        expected = TL_FUNCTIONS[kind](model, corrupted, clean_cache, mean_logprob)
        got = patch(model, clean, corrupted, mean_logprob, kind=kind)
        torch.testing.assert_close(got.effects, expected.cpu(), atol=1e-5, rtol=0)


def test_metric_returning_a_view_of_the_logits(model):
    """The logits buffer is reused between forwards; values must not alias it."""

    def view_metric(logits):
        return logits[0, -1, 3]

    clean, corrupted = token_pair(model, n_pos=6)
    _, clean_cache = model.run_with_cache(clean)
    expected = TL_FUNCTIONS["head_by_pos"](model, corrupted, clean_cache, view_metric)
    got = patch_heads(model, clean, corrupted, view_metric, by_position=True, cells_per_forward=2)
    torch.testing.assert_close(got.effects, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["head_all_pos", "head_by_pos"])
def test_metric_positions_only_computes_what_the_metric_reads(model, kind):
    clean, corrupted = token_pair(model, n_pos=7, seed=8)

    def two_positions(logits):  # reads positions 3 and 6 only
        return logits[:, 3, 5].mean() + logits[:, -1].log_softmax(-1)[:, 7].mean()

    _, clean_cache = model.run_with_cache(clean)
    expected = TL_FUNCTIONS[kind](model, corrupted, clean_cache, two_positions)
    got = patch(model, clean, corrupted, two_positions, kind=kind, metric_positions=[3, -1])
    torch.testing.assert_close(got.effects, expected.cpu(), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="reads logits outside metric_positions"):
        patch(model, clean, corrupted, two_positions, kind=kind, metric_positions=[-1])
    with pytest.raises(ValueError, match="are not positions"):
        patch(model, clean, corrupted, two_positions, kind=kind, metric_positions=[9])
