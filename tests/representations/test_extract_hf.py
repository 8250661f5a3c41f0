"""``extract`` against Hugging Face: every site and pool, batched and one-by-one.

References are computed one example at a time from the HF model itself:
``output_hidden_states`` for the residual stream, forward hooks on
``input_layernorm`` / the final norm for ``norm``, on the attention and MLP modules for
``attn_out`` / ``mlp_out``; pools are taken by hand from those per-token states.
"""

from __future__ import annotations

import pytest
import torch

from idiomlens.engine import prepare
from idiomlens.models import NO_PROCESSING, load_model
from idiomlens.representations import POOLS, extract

from ..models.conftest import build_hf, save_checkpoint

ATOL = 1e-4
FAMILIES = ("neox", "llama-gqa")


def _modules(hf, family):
    if family == "neox":
        layers, final = hf.gpt_neox.layers, hf.gpt_neox.final_layer_norm
        return layers, final, "attention"
    return hf.model.layers, hf.model.norm, "self_attn"


def _hf_states(hf, family, tokens):
    """Per-token states ``{site: {layer: [T, d]}}`` of one example, from the HF model."""
    layers, final, attn_name = _modules(hf, family)
    caught: dict[tuple[str, int], torch.Tensor] = {}

    def keep(site, layer):
        def hook(module, args, output):
            caught[site, layer] = (output[0] if isinstance(output, tuple) else output)[0]

        return hook

    handles = [final.register_forward_hook(keep("norm", len(layers)))]
    for i, block in enumerate(layers):
        handles.append(block.input_layernorm.register_forward_hook(keep("norm", i)))
        handles.append(getattr(block, attn_name).register_forward_hook(keep("attn_out", i)))
        handles.append(block.mlp.register_forward_hook(keep("mlp_out", i)))
    try:
        with torch.no_grad():
            hidden = hf(torch.tensor([tokens]), output_hidden_states=True).hidden_states
    finally:
        for h in handles:
            h.remove()
    n = len(layers)
    states = {
        site: {} for site in ("resid_pre", "resid_post", "resid_mid", "norm", "attn_out", "mlp_out")
    }
    for (site, layer), value in caught.items():
        states[site][layer] = value
    for layer in range(n):
        states["resid_pre"][layer] = hidden[layer][0]
        if layer < n - 1:  # HF's last hidden state is after the final norm
            states["resid_post"][layer] = hidden[layer + 1][0]
        if family != "neox":  # sequential block: resid_mid = resid_pre + attn_out
            states["resid_mid"][layer] = hidden[layer][0] + states["attn_out"][layer]
    return states


def _pool(h, ex, pool):
    s, e = ex.span
    if pool == "last":
        return h[len(ex) - 1][None]
    if pool == "idiom_last":
        return h[e][None]
    if pool == "mean":
        return h[ex.p0 :].mean(0, keepdim=True)
    if pool == "idiom":
        return h[s : e + 1].mean(0, keepdim=True)
    if pool == "literal":
        keep = [p for p in range(ex.p0, len(ex)) if not s <= p <= e]
        return h[keep].mean(0, keepdim=True)
    return h[ex.p0 :]  # tokens


@pytest.fixture(scope="module", params=FAMILIES)
def setup(request, tmp_path_factory, corpus):
    family = request.param
    hf = build_hf(family, seed=2)
    model = load_model(
        save_checkpoint(hf, tmp_path_factory.mktemp(family)), processing=NO_PROCESSING
    )
    aligned = prepare(model, corpus)
    states = [_hf_states(hf, family, list(ex.tokens)) for ex in aligned]
    return family, model, aligned, states


def _expected(aligned, states, site, layer, pool):
    return torch.cat(
        [_pool(st[site][layer], ex, pool) for ex, st in zip(aligned, states, strict=True)]
    )


@pytest.mark.parametrize("pool", list(POOLS))
@pytest.mark.parametrize("site", ["resid_pre", "norm"])
def test_equals_hf_for_every_pool(setup, corpus, site, pool):
    family, model, aligned, states = setup
    reps = extract(model, corpus, site=site, pool=pool, progress=False)
    assert reps.ids == corpus.ids and reps.site == site and reps.pool == pool
    n = model.cfg.n_layers
    assert reps.layers == tuple(range(n + 1 if site == "norm" else n))
    for layer in reps.layers:
        got = reps.vectors(layer)
        assert got.dtype == torch.float32
        torch.testing.assert_close(
            got, _expected(aligned, states, site, layer, pool), atol=ATOL, rtol=0
        )


@pytest.mark.parametrize("site", ["resid_post", "resid_mid", "attn_out", "mlp_out"])
def test_other_sites_equal_hf(setup, corpus, site):
    family, model, aligned, states = setup
    layers = sorted(states[0][site])
    if site == "resid_mid" and family == "neox":  # parallel attention and MLP
        with pytest.raises(ValueError, match="resid_mid"):
            extract(model, corpus, site=site, progress=False)
        return
    for pool in ("mean", "idiom_last"):
        reps = extract(model, corpus, site=site, layers=layers, pool=pool, progress=False)
        for layer in layers:
            want = _expected(aligned, states, site, layer, pool)
            torch.testing.assert_close(reps.vectors(layer), want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("batch_tokens", [1, 40, 100_000])
def test_batching_does_not_change_the_result(setup, corpus, padding_side, batch_tokens):
    """One-by-one (batch_tokens=1), small and one big batch, either padding side."""
    family, model, aligned, states = setup
    for site, pool in (("norm", "literal"), ("resid_pre", "tokens"), ("resid_pre", "last")):
        reps = extract(model, corpus, site=site, pool=pool, layers=[1], batch_tokens=batch_tokens,
                       padding_side=padding_side, progress=False)  # fmt: skip
        want = _expected(aligned, states, site, 1, pool)
        torch.testing.assert_close(reps.vectors(1), want, atol=ATOL, rtol=0)


def test_corpus_order_is_kept(setup, corpus):
    """A shuffled corpus gives the same rows, shuffled the same way."""
    family, model, aligned, states = setup
    order = torch.randperm(len(corpus), generator=torch.Generator().manual_seed(0)).tolist()
    shuffled = corpus.select([corpus.ids[i] for i in order])
    reps = extract(
        model, shuffled, site="resid_pre", layers=[0], pool="mean", batch_tokens=50, progress=False
    )
    assert reps.ids == shuffled.ids
    assert reps.labels["label"] == tuple(corpus[i].label for i in order)
    want = _expected(aligned, states, "resid_pre", 0, "mean")[order]
    torch.testing.assert_close(reps.vectors(0), want, atol=ATOL, rtol=0)


def test_token_rows_carry_ids_positions_and_labels(setup, corpus):
    family, model, aligned, _ = setup
    reps = extract(model, corpus, site="resid_pre", layers=[0], pool="tokens", progress=False)
    want_tokens = [t for ex in aligned for t in ex.tokens[ex.p0 :]]
    assert reps.token_ids.tolist() == want_tokens
    assert reps.positions.tolist() == [p for ex in aligned for p in range(ex.p0, len(ex))]
    assert [reps.ids[i] for i in reps.example_index.tolist()] == [
        ex.id for ex in aligned for _ in ex.tokens[ex.p0 :]
    ]
    assert reps.labels["label"] == tuple(ex.label for ex in aligned for _ in ex.tokens[ex.p0 :])
    assert reps.labels["token"][0] == model.tokenizer.decode([want_tokens[0]])
    assert reps.n_rows == reps.vectors(0).shape[0] == len(want_tokens)
