"""Idiom awareness against direct loss and explicit greedy decoding."""

from __future__ import annotations

import pytest
import torch

from idiomlens.data import align
from idiomlens.interventions import AwarenessResult, idiom_awareness, last_word_tokens


def _greedy_word_correct(model, tokens, k1, km):
    prompt = list(tokens[:k1])
    with torch.no_grad():
        for _ in range(km - k1 + 1):
            prompt.append(int(model(torch.tensor([prompt]))[0, -1].argmax()))
    return prompt[k1:] == list(tokens[k1 : km + 1])


def test_awareness_matches_references(model, corpus, tmp_path):
    splits = {"fig": corpus[:6], "rest": corpus[6:]}
    res = idiom_awareness(model, splits, progress=False, batch_tokens=40)
    assert res.splits == ("fig", "rest") and res.ids == corpus.ids
    for i, (ex, al) in enumerate(zip(corpus, align(corpus, model), strict=True)):
        with torch.no_grad():
            loss = float(model(torch.tensor([al.tokens]), return_type="loss"))
        assert float(res.loss[i]) == pytest.approx(loss, abs=1e-5)
        k1, km = last_word_tokens(al, ex.span)
        assert bool(res.nwp_correct[i]) == _greedy_word_correct(model, al.tokens, k1, km)
    df = res.to_dataframe()
    summary = res.summary().set_index("split")
    means = df.groupby("split").agg(loss=("loss", "mean"), acc=("nwp_correct", "mean"))
    assert summary.loc["rest", "n"] == 4
    assert summary["mean_loss"].tolist() == pytest.approx(means["loss"].tolist())
    assert summary["accuracy"].tolist() == pytest.approx(means["acc"].tolist())
    back = AwarenessResult.load(res.save(tmp_path / "aw"))
    assert back.splits == res.splits and torch.equal(back.loss, res.loss)


def test_awareness_of_one_corpus_and_shared_definitions(model, corpus):
    from idiomlens.interventions import ablate_heads

    res = idiom_awareness(model, corpus[:4], progress=False)
    assert res.splits == (corpus.name,)
    abl = ablate_heads(model, corpus[:4], [(0, 0)], progress=False)
    assert torch.allclose(res.loss, abl.clean_loss, atol=1e-6)
    assert torch.equal(res.nwp_correct, abl.clean_nwp_correct)
    assert torch.allclose(res.logprob, abl.clean_logprob, atol=1e-6)
    with pytest.raises(ValueError, match="at least one split"):
        idiom_awareness(model, {}, progress=False)


def test_aligned_input_and_batching_do_not_change_results(model, corpus):
    """Aligned splits equal raw ones; a tiny budget (one example per batch), a large one
    and one example at a time agree."""
    aligned = align(corpus, model)
    raw = idiom_awareness(model, {"a": corpus[:5], "b": corpus[5:]}, progress=False)
    pre = idiom_awareness(model, {"a": aligned[:5], "b": aligned[5:]}, progress=False)
    tiny = idiom_awareness(
        model, {"a": aligned[:5], "b": aligned[5:]}, batch_tokens=1, progress=False
    )
    big = idiom_awareness(
        model, {"a": aligned[:5], "b": aligned[5:]}, batch_tokens=10**6, progress=False
    )
    single = [idiom_awareness(model, [a], progress=False) for a in aligned]
    assert raw.ids == pre.ids == tiny.ids == big.ids == corpus.ids
    for res in (pre, tiny, big):
        torch.testing.assert_close(res.loss, raw.loss, atol=1e-5, rtol=0)
        torch.testing.assert_close(res.logprob, raw.logprob, atol=1e-5, rtol=0)
        assert torch.equal(res.nwp_correct, raw.nwp_correct)
        assert torch.equal(res.split_index, raw.split_index)
    torch.testing.assert_close(torch.cat([r.loss for r in single]), raw.loss, atol=1e-5, rtol=0)
    assert pre.meta["splits"] == ["a", "b"] and pre.meta["n_examples"] == len(corpus)
