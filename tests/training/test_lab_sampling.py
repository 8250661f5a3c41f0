"""sample() and perplexity() against hand-written references."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import chi2

from idiomlens.models import build_model, tiny_model, word_tokenizer
from idiomlens.models.tokenizers import BOS
from idiomlens.training.lab import perplexity, sample

PROMPTS = ["He spilled the", "The exam was a piece of", "Once"]


@pytest.fixture(scope="module")
def lm():
    return tiny_model(n_layers=2, seed=3)


@pytest.fixture(scope="module")
def small_vocab():
    """A random model over 12 symbols with a peaked but spread next-token distribution."""
    tok = word_tokenizer([BOS, *"abcdefghijk"])
    cfg = {
        "n_layers": 1,
        "d_model": 16,
        "n_heads": 2,
        "d_head": 8,
        "n_ctx": 16,
        "d_vocab": 12,
        "attn_only": True,
    }
    return build_model(cfg, seed=7, tokenizer=tok, init_std=0.6).eval()


def _logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids]))[0, -1]


def test_temperature_zero_is_the_argmax_continuation(lm):
    out = sample(lm, PROMPTS, max_new_tokens=6, temperature=0)
    for i, prompt in enumerate(PROMPTS):  # reference: one prompt at a time, argmax by hand
        ids = [0, *lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]]
        start = len(ids)
        for _ in range(6):
            ids.append(int(_logits(lm, ids).argmax()))
        assert out.new_tokens[i].tolist() == ids[start:]
        assert out.tokens[i, : len(ids)].tolist() == ids and int(out.prompt_lengths[i]) == start
        assert out.completion[i] == lm.tokenizer.decode(ids[start:])
        assert out.text[i] == lm.tokenizer.decode(ids[1:])


def test_prompt_forms_agree_and_seeds_reproduce(lm):
    ids = [0, *lm.tokenizer(PROMPTS[0], add_special_tokens=False)["input_ids"]]
    by_text = sample(lm, PROMPTS[0], max_new_tokens=4, seed=1)
    assert torch.equal(sample(lm, ids, max_new_tokens=4, seed=1).tokens, by_text.tokens)
    assert torch.equal(
        sample(lm, torch.tensor([ids]), max_new_tokens=4, seed=1).tokens, by_text.tokens
    )
    runs = [sample(lm, PROMPTS * 4, max_new_tokens=5, seed=s).new_tokens for s in (2, 2, 3)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    with pytest.raises(ValueError, match="n_ctx"):
        sample(lm, PROMPTS[0], max_new_tokens=100)


def test_top_k_never_leaves_the_k_most_likely(lm):
    k = 3
    out = sample(lm, PROMPTS * 8, max_new_tokens=5, temperature=1.5, top_k=k, seed=0)
    seen = set()
    for row, start in zip(out.tokens.tolist(), out.prompt_lengths.tolist(), strict=True):
        for t in range(start, start + 5):
            logits = _logits(lm, row[:t])
            kth = logits.topk(k).values[-1]
            assert logits[row[t]] >= kth
            seen.add((t - start, row[t]))
    assert len(seen) > 5 * 1.5  # it samples, it is not greedy


def test_nucleus_stays_within_the_smallest_set_reaching_p(lm):
    p = 0.6
    out = sample(lm, PROMPTS * 8, max_new_tokens=4, top_p=p, seed=0)
    distinct = 0
    for row, start in zip(out.tokens.tolist(), out.prompt_lengths.tolist(), strict=True):
        for t in range(start, start + 4):
            probs = _logits(lm, row[:t]).softmax(-1)
            order = probs.argsort(descending=True).tolist()
            nucleus, mass = [], 0.0
            for tok in order:  # the smallest set of most likely tokens whose mass reaches p
                nucleus.append(tok)
                mass += float(probs[tok])
                if mass >= p:
                    break
            assert row[t] in nucleus
            distinct += len(nucleus) > 1
    assert distinct > 0


def test_temperature_one_matches_softmax_chi_square(small_vocab):
    n = 6000
    prompt = [0, 3, 5, 1]
    probs = _logits(small_vocab, prompt).softmax(-1).double()
    assert probs.max() < 0.6 and (probs > 0.02).sum() >= 4  # a spread distribution
    drawn = sample(small_vocab, [prompt] * n, max_new_tokens=1, seed=123).new_tokens[:, 0]
    observed = torch.bincount(drawn, minlength=12).double()

    def stat(p):
        expected = n * p
        keep = expected >= 5  # rare tokens pooled into one cell
        o, e = observed[keep], expected[keep]
        if (~keep).any():
            o = torch.cat([o, observed[~keep].sum(0, keepdim=True)])
            e = torch.cat([e, expected[~keep].sum(0, keepdim=True)])
        return float(((o - e) ** 2 / e).sum()), len(o) - 1

    value, df = stat(probs)
    assert value < chi2.ppf(0.999, df), (value, df)
    wrong, df = stat((probs.log() / 2).softmax(-1))  # the test can tell temperature 2 apart
    assert wrong > chi2.ppf(0.999, df)


def test_perplexity_is_exp_of_mean_next_token_cross_entropy(lm):
    texts = [
        "He finally spilled the beans about the surprise party.",
        "Break a leg.",
        "The quick brown fox",
    ]
    out = perplexity(lm, texts, per_token=True, batch_size=2)
    all_nll, per_text = [], []
    for i, text in enumerate(texts):  # reference: one text at a time, no padding anywhere
        ids = torch.tensor([[0, *lm.tokenizer(text, add_special_tokens=False)["input_ids"]]])
        with torch.no_grad():
            logp = lm(ids)[0, :-1].log_softmax(-1)
        nll = -logp.gather(1, ids[0, 1:, None])[:, 0]
        all_nll.append(nll)
        per_text.append(float(nll.mean().exp()))
        n = len(nll)
        assert torch.allclose(out.nll[i, :n], nll, atol=1e-5)
        assert out.nll[i, n:].isnan().all() and out.mask[i].sum() == n == int(
            out.n_tokens_per_text[i]
        )
        assert torch.allclose(out.per_token[i, :n], nll.exp(), rtol=1e-5)
    assert out.per_text.tolist() == pytest.approx(per_text, rel=1e-5)
    assert out.mean == pytest.approx(float(torch.cat(all_nll).mean().exp()), rel=1e-5)
    assert out.n_tokens == sum(map(len, all_nll))
    assert out.max == pytest.approx(max(per_text), rel=1e-5) and out.min == pytest.approx(
        min(per_text), rel=1e-5
    )
    assert perplexity(lm, texts).nll is None
    assert list(out.to_dataframe().columns) == ["id", "perplexity", "n_tokens"]
