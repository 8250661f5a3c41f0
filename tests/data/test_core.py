"""IdiomExample / IdiomCorpus / align / batching basics."""

from __future__ import annotations

import pytest
import torch

from idiomlens.data import (
    AlignmentError,
    IdiomCorpus,
    IdiomExample,
    align,
    iter_batches,
    make_batch,
)
from idiomlens.models import tiny_tokenizer


def test_example_validates_span_and_label():
    with pytest.raises(ValueError, match="ex-9"):
        IdiomExample("ex-9", "short", (2, 10))
    with pytest.raises(ValueError, match="label"):
        IdiomExample("ex-9", "short text", (0, 5), label="idiomatic")
    assert IdiomExample("a", "Break a leg!", (0, 11)).idiom == "Break a leg"


def test_corpus_roundtrip_jsonl_csv_dataset(tmp_path, corpus):
    back = IdiomCorpus.from_jsonl(corpus.to_jsonl(tmp_path / "c.jsonl"))
    assert list(back) == list(corpus)
    back = IdiomCorpus.from_csv(corpus.to_csv(tmp_path / "c.csv"))
    assert list(back) == list(corpus)
    back = IdiomCorpus.from_dataset(corpus.to_dataset())
    assert list(back) == list(corpus)
    assert back.content_hash() == corpus.content_hash()


def test_corpus_errors_name_the_file_and_id(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        IdiomCorpus.from_jsonl(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x1", "text": "abc", "span": [0, 9]}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1.*x1"):
        IdiomCorpus.from_jsonl(bad)
    ex = IdiomExample("dup", "Break a leg!", (0, 11))
    with pytest.raises(ValueError, match="dup"):
        IdiomCorpus([ex, ex])


def test_corpus_indexing_and_hash_sensitivity(corpus):
    assert corpus["fig-2"].idiom == "Break a leg"
    assert corpus[1:3].ids == corpus.ids[1:3]
    assert corpus.select(["lit-0", "fig-0"]).ids == ("lit-0", "fig-0")
    assert corpus.filter(lambda e: e.label == "literal").ids == ("lit-0", "lit-1")
    assert corpus.content_hash() != corpus[1:].content_hash()
    with pytest.raises(KeyError, match="zzz"):
        corpus["zzz"]


def _overlapping_tokens(text, span, tok):
    """Reference: decode each token and keep those whose characters touch the span."""
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    return [i for i, (a, b) in enumerate(enc["offset_mapping"]) if a < span[1] and b > span[0]]


def test_align_matches_reference_and_covers_idiom(corpus):
    tok = tiny_tokenizer()
    aligned = align(corpus, tok)
    assert aligned.ids == corpus.ids
    for ex, al in zip(corpus, aligned, strict=True):
        ref = _overlapping_tokens(ex.text, ex.span, tok)
        assert al.span == (ref[0] + 1, ref[-1] + 1)
        assert al.p0 == 1 and al.tokens[0] == tok.bos_token_id and al.span[0] >= 1
        assert al.span_text.strip() == ex.idiom
    no_bos = align(corpus, tok, prepend_bos=False)
    assert all(a.span[0] == b.span[0] - 1 for a, b in zip(no_bos, aligned, strict=True))


def test_align_errors_name_the_example(corpus):
    tok = tiny_tokenizer()
    lengths = {a.id: len(a) for a in align(corpus, tok)}
    longest = max(lengths, key=lengths.get)
    limit = lengths[longest] - 1
    with pytest.raises(AlignmentError, match=f"{longest}.*context"):
        align(corpus.select([longest]), tok, max_length=limit)
    kept = align(corpus, tok, max_length=limit, on_error="skip")
    assert set(kept.skipped) == {i for i, n in lengths.items() if n > limit}
    assert kept.ids == tuple(i for i in corpus.ids if lengths[i] <= limit)


def test_align_uses_model_context(model):
    long = IdiomExample("long-1", "word " * 200 + "spilled the beans", (1000, 1017))
    with pytest.raises(AlignmentError, match="long-1"):
        align([long], model)


@pytest.mark.parametrize("side", ["right", "left"])
def test_batches_cover_corpus_once_within_budget(corpus, side):
    aligned = align(corpus, tiny_tokenizer())
    seen = []
    for batch in iter_batches(aligned, batch_tokens=40, padding_side=side):
        assert batch.size == 1 or batch.tokens.numel() <= 40
        for b, i in enumerate(batch.indices.tolist()):
            ex = aligned[i]
            real = batch.tokens[b][batch.attention_mask[b].bool()].tolist()
            assert real == list(ex.tokens)
            s, e = batch.spans[b].tolist()
            assert batch.tokens[b, s : e + 1].tolist() == list(
                ex.tokens[ex.span[0] : ex.span[1] + 1]
            )
            assert batch.idiom_mask()[b].sum() == e - s + 1
            assert batch.literal_mask()[b].sum() == len(ex) - 1 - (e - s + 1)
        seen += batch.indices.tolist()
    assert sorted(seen) == list(range(len(aligned)))


def test_left_padding_gives_same_logits(model, corpus):
    aligned = align(corpus, model)
    right, left = (make_batch(aligned, padding_side=s) for s in ("right", "left"))
    lr = model(right.tokens, **right.forward_kwargs())
    ll = model(left.tokens, **left.forward_kwargs())
    for b in range(right.size):
        t = int(right.lengths[b])
        torch.testing.assert_close(lr[b, :t], ll[b, -t:], atol=1e-4, rtol=1e-4)
