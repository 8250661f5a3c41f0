"""align + alignment_report with a byte-level BPE and a SentencePiece-style tokenizer."""

from __future__ import annotations

import importlib

import pytest
from tokenizers import Tokenizer, processors
from transformers import ByT5Tokenizer, PreTrainedTokenizerFast

from idiomlens.data import (
    AlignedCorpus,
    AlignedExample,
    AlignmentError,
    IdiomExample,
    align,
    alignment_report,
    core_span,
    load_epie,
)
from idiomlens.data.epie import EPIE_SPLITS
from idiomlens.models import tiny_tokenizer


@pytest.fixture(scope="module")
def trimmed_bpe():
    """The tiny byte-level BPE with ``trim_offsets=True`` (RoBERTa-style): ``" beans"``
    then reports offsets without its leading space."""
    backend = Tokenizer.from_str(tiny_tokenizer().backend_tokenizer.to_str())
    backend.post_processor = processors.ByteLevel(trim_offsets=True)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>")


@pytest.fixture(params=["bpe", "bpe-trimmed", "sentencepiece"])
def tok(request, sp_tokenizer, trimmed_bpe):
    return {"bpe": tiny_tokenizer(), "bpe-trimmed": trimmed_bpe, "sentencepiece": sp_tokenizer}[
        request.param
    ]


def _reference_span(ex, tok, p0):
    """Independent reference: tokens whose characters include a non-space idiom character."""
    enc = tok(ex.text, add_special_tokens=False, return_offsets_mapping=True)
    a, b = ex.span
    idiom_chars = {i for i in range(a, b) if not ex.text[i].isspace()}
    hits = [
        i for i, (lo, hi) in enumerate(enc["offset_mapping"]) if idiom_chars & set(range(lo, hi))
    ]
    return hits[0] + p0, hits[-1] + p0


@pytest.mark.parametrize("split", EPIE_SPLITS)
def test_epie_fixture_aligns_cleanly(epie_root, tok, split):
    corpus = load_epie(epie_root, split)
    aligned = align(corpus, tok)
    assert aligned.ids == corpus.ids and not aligned.skipped
    for ex, al in zip(corpus, aligned, strict=True):
        assert al.p0 == 1 and al.tokens[0] == tok.bos_token_id
        assert al.span == _reference_span(ex, tok, 1)
        assert 1 <= al.span[0] <= al.span[1] < len(al)
    report = alignment_report(corpus, aligned, tokenizer=tok)
    assert report.attrs["clean_fraction"] == 1.0
    assert report["covers"].all() and (report["extra_chars"] == 0).all()
    # the decoded token span is the idiom, up to the tokenizer's space marker
    for row in report.itertuples():
        assert "".join(row.decoded.split()) == "".join(row.idiom.split())


def test_sentencepiece_offsets_conventions(sp_tokenizer):
    """The conventions align relies on, checked on the real tokenizer (not assumed)."""
    text = "He spilled the beans  again."
    enc = sp_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    pieces = sp_tokenizer.convert_ids_to_tokens(enc["input_ids"])
    marked = [(p, o) for p, o in zip(pieces, enc["offset_mapping"], strict=True) if p[0] == "▁"]
    # every "▁x" token after the first starts at the space it stands for; a lone "▁"
    # covers only that space (so a trimmed idiom span never includes it)
    for piece, (lo, hi) in marked[1:]:
        assert text[lo] == " " and (len(piece) > 1 or hi == lo + 1)
    assert any(p == "▁" for p, _ in marked)  # the double space yields a lone "▁"
    # an idiom at the very start: the prepended "▁" is reported at character 0 and is in I
    ex = IdiomExample("start", "Break a leg!", (0, 11))
    [al] = align([ex], sp_tokenizer)
    assert al.span[0] == 1 and al.offsets[1][0] == 0


def test_edge_whitespace_is_trimmed(tok):
    text = "He spilled the beans about it."
    plain = IdiomExample("a", text, (3, 20))
    padded = IdiomExample("b", text, (2, 21))  # " spilled the beans "
    [pa, pb] = align([plain, padded], tok)
    assert pa.span == pb.span
    assert core_span(padded) == (3, 20)
    assert "about" not in pb.span_text


def test_whitespace_span_raises_naming_the_id(tok):
    ex = IdiomExample("ws-1", "He spilled  the beans.", (10, 12))
    with pytest.raises(AlignmentError, match="ws-1.*only whitespace"):
        align([ex], tok)
    kept = align([ex, IdiomExample("ok", "Break a leg!", (0, 11))], tok, on_error="skip")
    assert kept.ids == ("ok",) and "ws-1" in kept.skipped


def test_span_the_normalizer_drops_covers_no_token(sp_tokenizer):
    text = "He \u200b spilled the beans."  # zero-width space, dropped by clean_text
    ex = IdiomExample("zw-7", text, (3, 4))
    with pytest.raises(AlignmentError, match="zw-7.*covers no token"):
        align([ex], sp_tokenizer)
    ok = IdiomExample("zw-8", text, (3, 12))  # the same span extended to "spilled"
    [al] = align([ok], sp_tokenizer)
    assert al.span_text.strip().endswith("spilled")


def test_slow_tokenizer_is_a_type_error():
    # ByT5's tokenizer is pure Python (no files needed); it silently ignores
    # return_offsets_mapping, so align must refuse it rather than guess.
    slow = ByT5Tokenizer()
    assert not slow.is_fast
    ex = IdiomExample("a", "He spilled the beans.", (3, 20))
    with pytest.raises(TypeError, match="ByT5Tokenizer is not a fast"):
        align([ex], slow)


def test_no_bos_and_missing_bos():
    tok = tiny_tokenizer()
    ex = IdiomExample("a", "Break a leg!", (0, 11))
    [al] = align([ex], tok, prepend_bos=False)
    assert al.p0 == 0 and al.span[0] == 0
    with pytest.raises(ValueError, match="on_error"):
        align([ex], tok, on_error="warn")


def test_report_flags_wide_and_skipped_spans(corpus):
    tok = tiny_tokenizer()
    aligned = align(corpus, tok)
    good = aligned[0]
    wide = AlignedExample(**{**good.__dict__, "span": (good.p0, len(good) - 1)})
    narrow = AlignedExample(**{**good.__dict__, "span": (good.span[0] + 1, good.span[1])})
    tampered = AlignedCorpus([wide, *aligned[2:]], skipped={aligned[1].id: "too long"})
    report = alignment_report(corpus, tampered, max_extra=2)
    # rows follow the corpus; wide covers the idiom but adds much; narrow misses a word
    assert report["id"].tolist() == list(corpus.ids)
    row0, row1 = report.iloc[0], report.iloc[1]
    assert not row0["clean"] and row0["covers"] and row0["extra_chars"] > 2
    assert not row1["aligned"] and row1["reason"] == "too long"
    expected = (len(corpus) - 2) / len(corpus)
    assert report.attrs["clean_fraction"] == pytest.approx(expected)
    r2 = alignment_report(corpus[:1], AlignedCorpus([narrow]))
    assert not r2.loc[0, "covers"] and not r2.loc[0, "clean"]
    generous = alignment_report(corpus[:1], AlignedCorpus([wide]), max_extra=10_000)
    assert bool(generous.loc[0, "clean"])


def test_chunked_encoding_matches_one_by_one(corpus, monkeypatch):
    # the package re-exports the function ``align``, which shadows the module attribute
    align_module = importlib.import_module("idiomlens.data.align")
    tok = tiny_tokenizer()
    monkeypatch.setattr(align_module, "_ENCODE_CHUNK", 3)  # several chunk boundaries
    chunked = align(corpus, tok)
    single = [align_module.align_one(ex, tok, index=i) for i, ex in enumerate(corpus)]
    assert list(chunked) == single
    assert [a.index for a in chunked] == list(range(len(corpus)))
    # indices stay corpus positions when an example in an earlier chunk is skipped
    bad = IdiomExample("ws", "a  b", (1, 3))
    kept = align([bad, *corpus], tok, on_error="skip")
    assert [a.index for a in kept] == list(range(1, len(corpus) + 1))


def test_missing_bos_is_reported(sp_tokenizer):
    no_bos = PreTrainedTokenizerFast(tokenizer_object=sp_tokenizer.backend_tokenizer)
    ex = IdiomExample("a", "Break a leg!", (0, 11))
    with pytest.raises(AlignmentError, match="no BOS"):
        align([ex], no_bos)
    [al] = align([ex], no_bos, prepend_bos=False)
    assert al.p0 == 0 and al.span[0] == 0


def test_get_tokenizer_accepts_models_and_tokenizers(model):
    from idiomlens.data import get_tokenizer
    from idiomlens.models import tiny_model

    assert get_tokenizer(model) is model.tokenizer
    tok = tiny_tokenizer()
    assert get_tokenizer(tok) is tok
    with pytest.raises(ValueError, match="no tokenizer"):
        get_tokenizer(tiny_model(n_layers=1, with_tokenizer=False))
