"""detokenize: natural spacing rules and exact word spans."""

from __future__ import annotations

import pytest

from idiomlens.data.detok import detokenize

from .conftest import EPIE_ROOT

PTB = {"``": '"', "''": '"', "-LRB-": "(", "-RRB-": ")"}

CASES = [
    ("He did n't spill the beans .", "He didn't spill the beans."),
    (
        "I ca n't , she 's , we 're , they 'll , I 've , I 'm , he 'd",
        "I can't, she's, we're, they'll, I've, I'm, he'd",
    ),
    ("DO N'T SHE 'S", "DON'T SHE'S"),
    ("We must n’t , it ’s", "We mustn’t, it’s"),
    ('He said " break a leg " and left .', 'He said "break a leg" and left.'),
    ('" A " , " B "', '"A", "B"'),
    ("`` Once in a blue moon , '' he said .", '"Once in a blue moon," he said.'),
    ("‘ Hold on , ’ she said .", "‘Hold on,’ she said."),
    ("' Piece of cake , ' she said .", "'Piece of cake,' she said."),
    ("The boys ' toys", "The boys' toys"),
    ("He said ' fine ' and left .", "He said 'fine' and left."),
    ("The Joneses ' ' new ' car", "The Joneses' 'new' car"),
    ("It cost $ 5 ( or £ 4 ) , a 10 % rise !", "It cost $5 (or £4), a 10% rise!"),
    ("a $ sign", "a $ sign"),
    ("Wait ... what ? Yes ; no : maybe [ sic ]", "Wait... what? Yes; no: maybe [sic]"),
    ("late - as always - again", "late - as always - again"),
    ("-LRB- aside -RRB- .", "(aside)."),
]


@pytest.mark.parametrize(("tokens", "expected"), CASES)
def test_detokenize_spacing(tokens, expected):
    text, spans = detokenize(tokens.split())
    assert text == expected
    for word, (s, e) in zip(tokens.split(), spans, strict=True):
        assert text[s:e] == PTB.get(word, word)


def _check_spans(words, text, spans):
    """Reference properties: each word lands verbatim, in order, 0 or 1 space apart."""
    assert len(spans) == len(words)
    prev_end = 0
    for word, (s, e) in zip(words, spans, strict=True):
        assert text[s:e] == PTB.get(word, word)
        assert s - prev_end in ((0, 1) if prev_end else (0,))
        assert text[prev_end:s] in ("", " ")
        prev_end = e
    assert prev_end == len(text)
    assert text.replace(" ", "") == "".join(PTB.get(w, w) for w in words)


def test_detokenize_spans_on_every_fixture_line():
    files = [
        EPIE_ROOT / "Formal_Idioms_Corpus" / "Formal_Idioms_Words.txt",
        EPIE_ROOT / "Formal_Idioms_Corpus" / "translated_sentences.txt",
        EPIE_ROOT / "Static_Idioms_Corpus" / "Static_Idioms_Words.txt",
    ]
    n = 0
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            words = line.split()
            _check_spans(words, *detokenize(words))
            n += 1
    assert n > 60


def test_detokenize_edge_inputs():
    assert detokenize([]) == ("", [])
    assert detokenize([","]) == (",", [(0, 1)])
    with pytest.raises(ValueError, match="word 1"):
        detokenize(["a", ""])
    with pytest.raises(ValueError, match="whitespace"):
        detokenize(["a b"])
