"""Direct logit attribution against the model's own logits and TransformerLens's path."""

from __future__ import annotations

import math

import pytest
import torch

from idiomlens.attribution import (
    DLAResult,
    component_labels,
    direct_logit_attribution,
    logit_diff_attribution,
)
from idiomlens.data import IdiomCorpus, align
from idiomlens.models import tiny_model
from tests.conftest import make_example


def _folded(**kwargs):
    m = tiny_model(**kwargs)
    m.process_weights_(fold_ln=True, center_writing_weights=True, center_unembed=True)
    return m


def _random_norms(seed=6):
    """A tiny model whose LayerNorm weights and biases are not the identity (trained-like)."""
    m = tiny_model(seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith((".w", ".b")):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3 + float(name.endswith(".w")))
    return m


MODELS = {
    "ln": lambda: tiny_model(seed=0),
    "ln_random_norms": _random_norms,
    "ln_folded": lambda: _folded(seed=2),
    "rms": lambda: tiny_model(normalization_type="RMS", seed=3),
    "no_norm": lambda: tiny_model(normalization_type=None, seed=4),
    "rotary_attn_only": lambda: tiny_model(
        positional_embedding_type="rotary", attn_only=True, n_heads=2, d_model=16, seed=5
    ),
}


def _reference_group_logits(model, aligned):
    """Mean next-token logit per (example, group) from a plain forward, one example at a time."""
    out = torch.full((len(aligned), 2), float("nan"))
    for i, ex in enumerate(aligned):
        tokens = torch.tensor([ex.tokens])
        with torch.no_grad():
            logits = model(tokens)[0]
        s, e = ex.span
        idiom, literal = [], []
        for p in range(len(ex.tokens) - 1):
            value = float(logits[p, ex.tokens[p + 1]])
            if s <= p + 1 <= e:
                idiom.append(value)
            elif p + 1 >= ex.p0:
                literal.append(value)
        for g, vals in enumerate((idiom, literal)):
            if vals:
                out[i, g] = sum(vals) / len(vals)
    return out


@pytest.mark.parametrize("kind", list(MODELS))
def test_components_sum_to_the_next_token_logit(kind, corpus):
    model = MODELS[kind]()
    res = direct_logit_attribution(model, corpus, progress=False)
    ref = _reference_group_logits(model, align(corpus, model))
    assert res.attributions.shape == (len(corpus), len(component_labels(model)), 2)
    assert res.ids == corpus.ids
    total = res.attributions.sum(1) + res.unembed_bias
    assert torch.allclose(total, ref, atol=1e-5, equal_nan=True)
    assert torch.allclose(res.logits, ref, atol=1e-5, equal_nan=True)
    assert res.max_error() < 1e-5
    assert not torch.isnan(res.attributions).any()  # every fixture example has both groups


def test_labels_follow_the_residual_order(model, rotary_model):
    labels = component_labels(model)
    assert labels[:3] == ("embed", "pos_embed", "L0H0") and labels[-1] == "bias"
    assert labels.index("L0_mlp") == 2 + model.cfg.n_heads
    assert "pos_embed" not in component_labels(rotary_model)


@pytest.mark.parametrize("kind", ["ln", "ln_random_norms", "ln_folded"])
def test_heads_equal_transformerlens_stack_head_results(kind, corpus):
    model = MODELS[kind]()
    ex = align(corpus[:1], model)[0]
    tokens = torch.tensor([ex.tokens])
    names = [f"blocks.{i}.attn.hook_z" for i in range(model.cfg.n_layers)]
    names.append("ln_final.hook_scale")
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    stack = cache.stack_head_results(layer=-1, pos_slice=None)  # [head, 1, pos, d_model]
    stack = cache.apply_ln_to_stack(stack, layer=-1, pos_slice=None)
    w = getattr(model.ln_final, "w", None)
    unembed = model.W_U * (w[:, None] if w is not None else 1)  # [d_model, d_vocab]
    t = torch.tensor(ex.tokens[1:])
    per_pos = torch.einsum("cpd,dp->cp", stack[:, 0, :-1], unembed[:, t])  # [head, pos]
    s, e = ex.span
    target_pos = torch.arange(1, len(ex.tokens))
    idiom = (target_pos >= s) & (target_pos <= e)
    ref = torch.stack([per_pos[:, idiom].mean(1), per_pos[:, ~idiom].mean(1)], dim=-1)
    res = direct_logit_attribution(model, corpus[:1], progress=False)
    heads = [i for i, lab in enumerate(res.labels) if lab.startswith("L") and "H" in lab]
    assert torch.allclose(res.attributions[0, heads], ref, atol=1e-5)


def test_batched_equals_one_by_one_and_padding_side(model, corpus):
    full = direct_logit_attribution(model, corpus, progress=False)
    left = direct_logit_attribution(model, corpus, progress=False, padding_side="left")
    single = DLAResult.concat(
        [
            direct_logit_attribution(model, corpus[i : i + 1], progress=False)
            for i in range(len(corpus))
        ]
    )
    assert single.ids == full.ids
    assert torch.allclose(full.attributions, single.attributions, atol=1e-5)
    assert torch.allclose(full.attributions, left.attributions, atol=1e-4)
    small = direct_logit_attribution(model, corpus, progress=False, batch_tokens=40)
    assert torch.allclose(full.attributions, small.attributions, atol=1e-5)


def test_empty_group_is_nan_and_mean_ignores_it(model, corpus):
    whole = make_example("whole", "Break a leg", "Break a leg")  # no literal token
    res = direct_logit_attribution(model, IdiomCorpus([whole, corpus[0]]), progress=False)
    assert torch.isnan(res.attributions[0, :, 1]).all() and res.counts[0, 1] == 0
    assert torch.allclose(res.mean()[:, 1], res.attributions[1, :, 1])
    assert res.max_error() < 1e-5


def test_logit_diff_mode_matches_model_logits(model):
    tokens = torch.tensor([[0, 5, 6, 7, 8], [0, 9, 10, 11, 0]])
    positions, targets, distractors = [4, 3], [12, 13], [14, 15]
    res = logit_diff_attribution(
        model, tokens, positions=positions, targets=targets, distractors=distractors
    )
    with torch.no_grad():
        logits = model(tokens)
    ref = torch.stack(
        [
            logits[b, positions[b], targets[b]] - logits[b, positions[b], distractors[b]]
            for b in range(2)
        ]
    )
    assert res.groups == ("logit_diff",) and res.attributions.shape == (2, 13, 1)
    assert torch.allclose(res.attributions.sum(1)[:, 0] + res.unembed_bias[:, 0], ref, atol=1e-5)
    plain = logit_diff_attribution(model, tokens, positions=positions, targets=targets)
    assert plain.groups == ("logit",)
    ref_plain = torch.stack([logits[b, positions[b], targets[b]] for b in range(2)])
    assert torch.allclose(plain.logits[:, 0], ref_plain, atol=1e-5)
    with pytest.raises(ValueError, match="positions"):
        logit_diff_attribution(model, tokens, positions=[9, 0], targets=targets)


def test_result_methods_and_roundtrip(model, corpus, tmp_path):
    res = direct_logit_attribution(model, corpus, progress=False)
    top = res.top(3, group="literal")
    means = res.mean()[:, 1]
    assert [v for _, v in top] == sorted(means.tolist(), reverse=True)[:3]
    assert math.isclose(top[0][1], float(means.max()), rel_tol=1e-6)
    assert res.head_matrix("idiom")[1, 2] == res.mean()[res.labels.index("L1H2"), 0]
    df = res.to_dataframe()
    assert len(df) == res.attributions.numel()
    row = df[(df.id == "fig-1") & (df.component == "L0_mlp") & (df.group == "literal")]
    assert float(row.attribution.iloc[0]) == pytest.approx(
        float(res.attributions[2, res.labels.index("L0_mlp"), 1])
    )
    back = DLAResult.load(res.save(tmp_path / "dla"))
    assert back.labels == res.labels and back.groups == res.groups and back.ids == res.ids
    assert torch.equal(back.attributions, res.attributions)
    with pytest.raises(KeyError, match="unknown group"):
        res.top(2, group="nope")


def test_plot_shows_the_mean_attributions(model, corpus):
    res = direct_logit_attribution(model, corpus[:3], progress=False)
    fig = res.plot()
    assert [t.name for t in fig.data] == ["idiom", "literal"]
    assert list(fig.data[1].y) == pytest.approx(res.mean()[:, 1].tolist())
    heads = res.plot(kind="heads", group="idiom").data[0]
    assert heads.z[0][1] == pytest.approx(float(res.mean()[res.labels.index("L0H1"), 0]))
    with pytest.raises(ValueError, match="kind"):
        res.plot(kind="pie")


def _config_model(**overrides):
    """A seeded random model from a raw config (Llama-/Pythia-like shapes the fixtures lack)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from idiomlens.models import tiny_tokenizer

    tok = tiny_tokenizer()
    cfg = dict(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_head=8,
        d_mlp=48,
        d_vocab=len(tok),
        n_ctx=64,
        act_fn="silu",
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_dim=8,
        default_prepend_bos=True,
        seed=None,
    )
    cfg.update(overrides)
    model = HookedTransformer(HookedTransformerConfig(**cfg), tokenizer=tok, move_to_device=False)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            norm_weight = name.endswith(".w")  # LayerNorm / RMSNorm weights around 1
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2 + float(norm_weight))
    return model.eval()


@pytest.mark.parametrize(
    "overrides",
    [
        {"gated_mlp": True, "n_key_value_heads": 2},  # Llama-like: GQA, gated MLP, RMSNorm
        {"parallel_attn_mlp": True, "normalization_type": "LN", "act_fn": "gelu"},  # Pythia-like
    ],
    ids=["llama_like", "pythia_like"],
)
def test_exact_on_other_architectures(overrides, corpus):
    model = _config_model(**overrides)
    res = direct_logit_attribution(model, corpus[:4], progress=False)
    ref = _reference_group_logits(model, align(corpus[:4], model))
    assert torch.allclose(res.attributions.sum(1) + res.unembed_bias, ref, atol=1e-4)
    assert torch.allclose(res.logits, ref, atol=1e-4)  # non-trivial ln_final w and b


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_one_example_per_batch_equals_one_batch(model, corpus, padding_side):
    """batch_tokens=1 (every example alone) equals one large batch, either padding side;
    the result records its provenance."""
    big = direct_logit_attribution(model, corpus, progress=False, batch_tokens=10**6)
    tiny = direct_logit_attribution(
        model, corpus, progress=False, batch_tokens=1, padding_side=padding_side
    )
    assert tiny.ids == big.ids == corpus.ids
    assert torch.allclose(tiny.attributions, big.attributions, atol=1e-4)
    assert torch.allclose(tiny.logits, big.logits, atol=1e-4)
    assert torch.equal(tiny.counts, big.counts)
    assert tiny.meta["padding_side"] == padding_side and tiny.meta["n_examples"] == len(corpus)
    assert tiny.meta["corpus_hash"] == big.meta["corpus_hash"]
