"""Tokenizers built offline from data: byte-level BPE, character-level and word-level.

Every builder returns a ``PreTrainedTokenizerFast`` whose token ``<|endoftext|>`` (id 0)
is the BOS, EOS and padding token, as in GPT-2, and which has been round-tripped through
a temporary folder so that it has a ``name_or_path`` TransformerLens can re-open offline
(it reloads tokenizers with ``add_bos_token``). All of them save with
``save_pretrained`` and reload with ``AutoTokenizer.from_pretrained``, so a model folder
written by :func:`~idiomlens.models.save_hooked` carries its tokenizer.

- :func:`train_bpe_tokenizer`: GPT-2-style byte-level BPE trained on sentences;
- :func:`char_tokenizer`: one token per character seen in the texts (plus ``<unk>``);
- :func:`word_tokenizer`: a fixed vocabulary of whitespace-separated symbols, as the
  synthetic tasks of :mod:`idiomlens.training.lab.tasks` use (``"3 1 4 | 3 1 4"``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

__all__ = ["BOS", "UNK", "train_bpe_tokenizer", "char_tokenizer", "word_tokenizer"]

BOS = "<|endoftext|>"
UNK = "<unk>"


def _finish(tok: Tokenizer, *, unk: str | None = None) -> PreTrainedTokenizerFast:
    """Wrap ``tok`` (BOS = EOS = PAD = id 0) and round-trip it through a temp folder."""
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=BOS, pad_token=BOS, unk_token=unk
    )
    folder = Path(tempfile.mkdtemp(prefix="idiomlens-tokenizer-"))
    fast.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def train_bpe_tokenizer(sentences: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a GPT-2-style byte-level BPE on ``sentences``, offline, in milliseconds.

    Words carry their leading space (``" beans"``) and the offset mapping is exact.

    >>> tok = train_bpe_tokenizer(["the cat sat", "the cat ran"], 270)
    >>> tok.decode(tok("the cat")["input_ids"])
    'the cat'
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sentences, trainer=trainer)
    return _finish(tok)


def char_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """One token per distinct character of ``texts`` (sorted), after ``<|endoftext|>``
    (id 0) and ``<unk>`` (id 1, for characters never seen).

    >>> tok = char_tokenizer(["abc", "cab d"])
    >>> len(tok), tok("cab")["input_ids"]
    (7, [5, 3, 4])
    >>> tok.decode(tok("bad x")["input_ids"])
    'bad <unk>'
    """
    chars = sorted(set("".join(texts)))
    vocab = {BOS: 0, UNK: 1} | {c: i + 2 for i, c in enumerate(chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return _finish(tok, unk=UNK)


def word_tokenizer(symbols: Sequence[str]) -> PreTrainedTokenizerFast:
    """A tokenizer whose tokens are ``symbols`` separated by whitespace; id ``i`` is
    ``symbols[i]`` and ``symbols[0]`` must be ``<|endoftext|>``.

    >>> tok = word_tokenizer([BOS, "0", "1", "|"])
    >>> tok("1 0 | 1 0")["input_ids"]
    [2, 1, 3, 2, 1]
    >>> tok.decode([2, 1, 3])
    '1 0 |'
    """
    if not symbols or symbols[0] != BOS:
        raise ValueError(f"word_tokenizer: symbols[0] must be {BOS!r}, got {list(symbols[:1])}")
    if len(set(symbols)) != len(symbols) or any(not s or s.split() != [s] for s in symbols):
        raise ValueError("word_tokenizer: symbols must be distinct and contain no whitespace")
    vocab = {s: i for i, s in enumerate(symbols)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    return _finish(tok)
