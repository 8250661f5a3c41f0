"""Fixtures for the data tests: EPIE-layout fixture folders and a SentencePiece-style
(Metaspace, Unigram) fast tokenizer built offline in milliseconds."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from idiomlens.models.tiny import TINY_TEXT

FIXTURES = Path(__file__).parent / "fixtures"
EPIE_ROOT = FIXTURES / "epie"
EPIE_BAD = FIXTURES / "epie_bad"


def _training_text() -> list[str]:
    files = [
        EPIE_ROOT / "Formal_Idioms_Corpus" / "Formal_Idioms_Words.txt",
        EPIE_ROOT / "Formal_Idioms_Corpus" / "translated_sentences.txt",
        EPIE_ROOT / "Static_Idioms_Corpus" / "Static_Idioms_Words.txt",
    ]
    lines = [line for f in files for line in f.read_text(encoding="utf-8").splitlines()]
    return TINY_TEXT.splitlines() + [" ".join(line.split()) for line in lines]


@pytest.fixture(scope="session")
def epie_root() -> Path:
    return EPIE_ROOT


@pytest.fixture(scope="session")
def epie_bad() -> Path:
    return EPIE_BAD


@pytest.fixture(scope="session")
def sp_tokenizer() -> PreTrainedTokenizerFast:
    """Llama-2/T5-style: Unigram model, ``Metaspace`` ("▁" prefix) pre-tokenizer, BOS ``<s>``.

    Its normalizer is BERT's ``clean_text``, which drops control and zero-width
    characters, so a span of only such characters has no token.
    """
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<s>", "</s>"],
        unk_token="<unk>",
        show_progress=False,
    )
    tok.train_from_iterator(_training_text(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
