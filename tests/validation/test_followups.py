"""Follow-up analyses on the engine, each against a direct (unbatched) reference."""

from __future__ import annotations

import pytest
import torch

from idiomlens.attribution import direct_logit_attribution
from idiomlens.attribution.by_layer import dla_by_layer
from idiomlens.attribution.logit_lens import logit_lens
from idiomlens.data import IdiomCorpus, IdiomExample, align
from idiomlens.interventions.metrics import word_spans
from idiomlens.interventions.replacement import replace_last_word, replaced_example
from idiomlens.scoring.pattern_similarity import pattern_similarity
from idiomlens.viz.followups import plot_dla_by_layer
from tests.conftest import make_example


def _prompt_logits(model, ex_aligned, k1):
    logits = model(torch.tensor([ex_aligned.tokens]))[0]
    return logits[k1 - 1]


@torch.no_grad()
def test_logit_lens_last_stage_is_the_model_and_batching_is_free(model, corpus):
    res = logit_lens(model, corpus, progress=False)
    tight = logit_lens(model, corpus, batch_tokens=30, progress=False)
    assert torch.allclose(res.logprob, tight.logprob, atol=1e-5)
    assert torch.equal(res.rank, tight.rank)
    aligned = align(corpus, model)
    spans = word_spans(aligned, list(corpus))
    for i, a in enumerate(aligned):
        k1 = int(spans[i, 0])
        _, cache = model.run_with_cache(torch.tensor([a.tokens]))
        t1 = a.tokens[k1]
        final = torch.log_softmax(_prompt_logits(model, a, k1), -1)[t1]
        assert float(res.logprob[i, -1]) == pytest.approx(float(final), abs=1e-4)
        embed = cache["blocks.0.hook_resid_pre"][0, k1 - 1]
        lens0 = torch.log_softmax(model.unembed(model.ln_final(embed[None, None]))[0, 0], -1)
        assert float(res.logprob[i, 0]) == pytest.approx(float(lens0[t1]), abs=1e-4)
    assert list(res.summary()["stage"]) == ["embed", "L0", "L1"]
    assert res.plot().data


@pytest.fixture(scope="module")
def paired():
    """Two figurative sentences whose paraphrases are linked by meta["pair"]."""
    rows = [
        make_example("fig-0", "He finally spilled the beans about the party.", "spilled the beans"),
        make_example("fig-1", "The old farmer kicked the bucket last winter.", "kicked the bucket"),
        make_example("fig-2", "The exam was a piece of cake.", "a piece of cake"),
    ]
    paras = [
        IdiomExample(
            "para-0",
            "He finally told the secret about the party.",
            (11, 26),
            meta={"pair": "fig-0"},
        ),
        IdiomExample(
            "para-1", "The old farmer died last winter.", (15, 19), meta={"pair": "fig-1"}
        ),
    ]
    return IdiomCorpus(rows + paras)


@torch.no_grad()
def test_replacement_matches_direct_forwards(model, paired):
    figs = paired[:3]
    res = replace_last_word(model, figs, partners=paired, progress=False)
    assert res.ids == ("fig-0", "fig-1") and res.replacements == ("secret", "died")
    for i, ex_id in enumerate(res.ids):
        ex = paired[ex_id]
        new = replaced_example(ex, res.replacements[i])
        a, b = align([ex, new], model)
        k1 = int(word_spans([a], [ex])[0, 0])
        loss_a = model(torch.tensor([a.tokens]), return_type="loss")
        loss_b = model(torch.tensor([b.tokens]), return_type="loss")
        assert float(res.loss_diff[i]) == pytest.approx(float(loss_b - loss_a), abs=1e-4)
        logits = _prompt_logits(model, a, k1)
        ref = logits[a.tokens[k1]] - logits[b.tokens[k1]]
        assert float(res.logit_diff[i]) == pytest.approx(float(ref), abs=1e-4)
        last = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
        ra = model.run_with_cache(torch.tensor([a.tokens]))[1][last][0, -1]
        rb = model.run_with_cache(torch.tensor([b.tokens]))[1][last][0, -1]
        cos = torch.nn.functional.cosine_similarity(ra, rb, dim=0)
        assert float(res.cosine[i]) == pytest.approx(float(cos), abs=1e-5)
    rand = replace_last_word(model, figs, replacement="random", seed=3, progress=False)
    again = replace_last_word(model, figs, replacement="random", seed=3, progress=False)
    assert rand.replacements == again.replacements and len(rand.ids) == 3
    assert all(w != r for w, r in zip(rand.words, rand.replacements, strict=True))
    assert len(res.plot(rand).data) == 6
    with pytest.raises(ValueError, match="no example has a paraphrase"):
        replace_last_word(model, figs[2:], progress=False)


@torch.no_grad()
def test_pattern_similarity_matches_per_pair_reference(model):
    corpus = IdiomCorpus(
        [
            IdiomExample("formal-1", "He kicked the bucket.", (3, 20)),
            IdiomExample("trans-1", "He kicked the ball.", (3, 18)),
            IdiomExample("formal-2", "She spilled the beans.", (4, 21)),
            IdiomExample("trans-2", "She spilled the beans.", (4, 21)),
        ]
    )
    for exclude_bos in (False, True):
        res = pattern_similarity(model, corpus, exclude_bos=exclude_bos, progress=False)
        assert res.ids == ("formal-1|trans-1", "formal-2|trans-2")
        for i, (a_id, b_id) in enumerate([("formal-1", "trans-1"), ("formal-2", "trans-2")]):
            a, b = align([corpus[a_id], corpus[b_id]], model)
            _, ca = model.run_with_cache(torch.tensor([a.tokens]))
            _, cb = model.run_with_cache(torch.tensor([b.tokens]))
            for layer in range(model.cfg.n_layers):
                pa = ca[f"blocks.{layer}.attn.hook_pattern"][0]
                pb = cb[f"blocks.{layer}.attn.hook_pattern"][0]
                if exclude_bos:
                    pa, pb = pa[..., 1:], pb[..., 1:]
                ref = torch.nn.functional.cosine_similarity(pa.flatten(1), pb.flatten(1), dim=-1)
                assert torch.allclose(res.cosine[i, layer], ref, atol=1e-5)
        assert torch.allclose(res.cosine[1], torch.ones_like(res.cosine[1]), atol=1e-5)
    assert len(res.to_dataframe()) == 8 and res.plot().data


def test_dla_by_layer_regroups_the_components(model, corpus):
    dla = direct_logit_attribution(model, corpus, progress=False)
    table = dla_by_layer(dla, "idiom")
    heads = dla.head_matrix("idiom")
    means = dla.mean()[:, 0]
    for layer in range(model.cfg.n_layers):
        row = table.iloc[layer]
        assert row["heads"] == pytest.approx(float(heads[layer].sum()), abs=1e-5)
        assert row["mlp"] == pytest.approx(float(means[dla.labels.index(f"L{layer}_mlp")]))
        assert row["top_head"] == f"L{layer}H{int(heads[layer].argmax())}"
    assert len(plot_dla_by_layer(dla).data) == 3
