"""Character span -> token span alignment (METHODS.md, "Notation").

The idiom token span ``I = [s, e]`` (inclusive) is the set of tokens whose character
offsets overlap the example's span ``[a, b)``, read from the fast tokenizer's offset
mapping, after whitespace at the span's edges is trimmed (:func:`core_span`). BOS, when
prepended, is token 0 and never inside ``I`` (``s >= p0``).

Tokenizer conventions this handles (tested in ``tests/data``):

* byte-level BPE (GPT-2, Pythia, Llama-3, Qwen2): words carry their leading space
  (``" beans"``, offsets include the space); the span starts at the word's token.
* SentencePiece-style / ``Metaspace`` (Llama-2, T5, Gemma): ``"▁beans"`` offsets also
  include the space; a prepended ``"▁"`` at the start of the text is reported at the
  first character, and a lone ``"▁"`` before a word (when the word does not merge with
  it) covers only the space and is therefore *not* in the span.
* characters the tokenizer's normalizer drops (e.g. a zero-width space under a BERT
  normalizer) have no token: a span of only such characters raises
  :class:`AlignmentError` naming the example.

Slow (Python) tokenizers have no offset mapping and are rejected with a ``TypeError``.
:func:`alignment_report` checks a whole corpus: does each token span cover the idiom
and little else?
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any

from .example import IdiomExample

__all__ = [
    "AlignedExample",
    "AlignedCorpus",
    "AlignmentError",
    "align",
    "align_one",
    "alignment_report",
    "core_span",
    "get_tokenizer",
]

log = logging.getLogger(__name__)


class AlignmentError(ValueError):
    """An example cannot be aligned (empty token span, too long for the context, ...)."""


@dataclass(frozen=True)
class AlignedExample:
    """An example as token ids with its inclusive idiom token span.

    Attributes:
        id: the example id.
        tokens: token ids, BOS first when ``p0 == 1``.
        span: ``(s, e)`` inclusive token positions of the idiom (``s >= p0``).
        p0: 1 if a BOS token was prepended, else 0.
        label: ``"figurative"`` or ``"literal"``.
        index: position of the example in the corpus it came from.
        offsets: ``(start, end)`` character offsets of each token (BOS: ``(0, 0)``).
        text: the example text.
        char_span: the example's character span ``[a, b)`` as given (edge whitespace
            included), which the last-word metrics of ablation and awareness read;
            ``None`` for examples built from tokens alone.
    """

    id: str
    tokens: tuple[int, ...]
    span: tuple[int, int]
    p0: int
    label: str
    index: int
    offsets: tuple[tuple[int, int], ...]
    text: str
    char_span: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def span_text(self) -> str:
        """The text covered by the idiom tokens (may include a leading space)."""
        s, e = self.span
        return self.text[self.offsets[s][0] : self.offsets[e][1]]


class AlignedCorpus(list):
    """A list of :class:`AlignedExample`; ``skipped`` maps id -> reason for dropped ones."""

    def __init__(self, items: Iterable[AlignedExample] = (), skipped: dict[str, str] | None = None):
        super().__init__(items)
        self.skipped: dict[str, str] = dict(skipped or {})

    @property
    def ids(self) -> tuple[str, ...]:
        """Ids of the aligned examples, in order."""
        return tuple(a.id for a in self)


def get_tokenizer(tokenizer_or_model: Any) -> Any:
    """Return the HF tokenizer of a model (``.tokenizer``) or the tokenizer itself.

    >>> from idiomlens.models import tiny_model
    >>> get_tokenizer(tiny_model(n_layers=1)).bos_token
    '<|endoftext|>'
    """
    tok = getattr(tokenizer_or_model, "tokenizer", tokenizer_or_model)
    if tok is None:
        raise ValueError("the model has no tokenizer; pass one explicitly")
    return tok


def _context_length(tokenizer_or_model: Any, max_length: int | None) -> int | None:
    if max_length is not None:
        return max_length
    cfg = getattr(tokenizer_or_model, "cfg", None)
    return getattr(cfg, "n_ctx", None)


def core_span(example: IdiomExample) -> tuple[int, int]:
    """The example's span without leading/trailing whitespace (what alignment matches).

    Whitespace at the span's edges is not part of the idiom: with a byte-level BPE a
    trailing space would otherwise pull in the next word's token (``" about"``), and with
    a SentencePiece-style tokenizer a leading space is a lone ``"▁"`` token. A span of
    whitespace only has no idiom at all and raises :class:`AlignmentError`.

    >>> core_span(IdiomExample("a", "He spilled the beans .", (2, 21)))
    (3, 20)
    """
    a, b = example.span
    idiom = example.text[a:b]
    stripped = idiom.lstrip()
    if not stripped.strip():
        raise AlignmentError(
            f"example {example.id!r}: span {example.span} ({idiom!r}) is only whitespace"
        )
    a += len(idiom) - len(stripped)
    return a, a + len(stripped.rstrip())


_ENCODE_CHUNK = 512


def _check_fast(tokenizer: Any) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            f"{type(tokenizer).__name__} is not a fast (Rust) tokenizer: character offsets "
            "are needed to align idiom spans; load it with use_fast=True"
        )


def _encode(tokenizer: Any, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """Token ids and character offsets of several texts in one (parallel) tokenizer call."""
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    return [
        (list(ids), [(int(lo), int(hi)) for lo, hi in offs])
        for ids, offs in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
    ]


def _from_encoding(
    example: IdiomExample,
    ids: list[int],
    offsets: list[tuple[int, int]],
    bos: int | None,
    index: int,
    max_length: int | None,
) -> AlignedExample:
    """The aligned example from its encoding; ``bos`` is prepended unless ``None``."""
    p0 = 0
    if bos is not None:
        ids, offsets, p0 = [bos, *ids], [(0, 0), *offsets], 1
    a, b = core_span(example)
    inside = [i for i in range(p0, len(ids)) if offsets[i][0] < b and offsets[i][1] > a]
    if not inside:
        raise AlignmentError(
            f"example {example.id!r}: span {example.span} ({example.idiom!r}) covers no token "
            "(the tokenizer's normalizer may drop these characters)"
        )
    if max_length is not None and len(ids) > max_length:
        raise AlignmentError(
            f"example {example.id!r}: {len(ids)} tokens, longer than the context ({max_length})"
        )
    return AlignedExample(
        id=example.id,
        tokens=tuple(ids),
        span=(inside[0], inside[-1]),
        p0=p0,
        label=example.label,
        index=index,
        offsets=tuple(offsets),
        text=example.text,
        char_span=tuple(example.span),
    )


def _bos_id(tokenizer: Any, prepend_bos: bool) -> int | None:
    if not prepend_bos:
        return None
    if tokenizer.bos_token_id is None:
        raise AlignmentError(f"{type(tokenizer).__name__} has no BOS token; pass prepend_bos=False")
    return int(tokenizer.bos_token_id)


def align_one(
    example: IdiomExample,
    tokenizer: Any,
    *,
    prepend_bos: bool = True,
    index: int = 0,
    max_length: int | None = None,
) -> AlignedExample:
    """Align one example (see :func:`align`); raises :class:`AlignmentError` naming its id.

    >>> from idiomlens.models import tiny_tokenizer
    >>> align_one(IdiomExample("a", "Break a leg!", (0, 11)), tiny_tokenizer()).span_text
    'Break a leg'
    """
    _check_fast(tokenizer)
    [(ids, offsets)] = _encode(tokenizer, [example.text])
    bos = _bos_id(tokenizer, prepend_bos)
    return _from_encoding(example, ids, offsets, bos, index, max_length)


def align(
    corpus: Iterable[IdiomExample],
    tokenizer: Any,
    *,
    prepend_bos: bool = True,
    max_length: int | None = None,
    on_error: str = "raise",
) -> AlignedCorpus:
    """Map each example's character span to an inclusive token span ``(s, e)``.

    Args:
        corpus: examples (an :class:`~idiomlens.IdiomCorpus` or any iterable).
        tokenizer: a fast HF tokenizer, or a model whose ``.tokenizer`` is used (then the
            model's ``n_ctx`` is the default ``max_length``).
        prepend_bos: prepend the tokenizer's BOS (``p0 = 1``); never inside the span.
        max_length: longest allowed sequence (BOS included); longer examples are errors.
        on_error: ``"raise"`` (default) raises :class:`AlignmentError` naming the example;
            ``"skip"`` drops it, logs a warning and records it in ``result.skipped``.

    Returns:
        An :class:`AlignedCorpus` (a list of :class:`AlignedExample`, corpus order; each
        ``.index`` is the example's position in ``corpus``, skipped ones included).

    Texts are tokenised in chunks of a few hundred with one tokenizer call each (the
    Rust tokenizer encodes a batch in parallel), so aligning the 21,891 static EPIE
    sentences takes seconds. Raises ``TypeError`` for a slow (Python) tokenizer and
    :class:`AlignmentError` (before any example) when ``prepend_bos`` is asked of a
    tokenizer without a BOS token.

    >>> from idiomlens.models import tiny_tokenizer
    >>> ex = IdiomExample("a", "He spilled the beans.", (3, 20))
    >>> [al] = align([ex], tiny_tokenizer())
    >>> al.span_text
    ' spilled the beans'
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    tok = get_tokenizer(tokenizer)
    _check_fast(tok)
    bos = _bos_id(tok, prepend_bos)
    limit = _context_length(tokenizer, max_length)
    out, skipped = [], {}
    examples = iter(corpus)
    index = 0
    while chunk := list(islice(examples, _ENCODE_CHUNK)):
        for ex, (ids, offsets) in zip(chunk, _encode(tok, [e.text for e in chunk]), strict=True):
            try:
                out.append(_from_encoding(ex, ids, offsets, bos, index, limit))
            except AlignmentError as err:
                if on_error == "raise":
                    raise
                skipped[ex.id] = str(err)
                log.warning("skipping: %s", err)
            index += 1
    return AlignedCorpus(out, skipped)


def alignment_report(
    corpus: Iterable[IdiomExample],
    aligned: AlignedCorpus | Iterable[AlignedExample],
    *,
    max_extra: int = 2,
    tokenizer: Any = None,
) -> Any:
    """Per example: does the token span cover the idiom and little else?

    For each corpus example, the characters covered by its token span ``[s, e]``
    (``text[offsets[s][0] : offsets[e][1]]``) are compared with the idiom's characters
    (the span with edge whitespace trimmed, :func:`core_span`). The alignment is *clean*
    when the token span covers every idiom character and adds at most ``max_extra``
    non-whitespace characters (e.g. the ``n`` of ``don`` when the idiom ends at ``do``
    in ``don't`` under GPT-2's pre-tokenizer). Examples that were not aligned (skipped)
    are rows with ``aligned=False`` and count as not clean.

    Args:
        corpus: the examples that were aligned.
        aligned: the result of :func:`align` on them (matched by id).
        max_extra: the most extra non-whitespace characters a clean span may cover.
        tokenizer: optional; adds a ``decoded`` column (``tokenizer.decode`` of the span).

    Returns:
        A ``pandas.DataFrame`` in corpus order with columns ``id, idiom, span_text,
        s, e, n_tokens, covers, extra_chars, clean, aligned, reason`` (plus ``decoded``);
        ``df.attrs["clean_fraction"]`` is the fraction of clean rows.

    >>> from idiomlens.models import tiny_tokenizer
    >>> ex = IdiomExample("a", "He spilled the beans.", (3, 20))
    >>> df = alignment_report([ex], align([ex], tiny_tokenizer()))
    >>> df.loc[0, "span_text"], bool(df.loc[0, "clean"]), df.attrs["clean_fraction"]
    (' spilled the beans', True, 1.0)
    """
    import pandas as pd

    by_id = {al.id: al for al in aligned}
    skipped = getattr(aligned, "skipped", {})
    rows = []
    for ex in corpus:
        al = by_id.get(ex.id)
        row: dict[str, Any] = {"id": ex.id, "idiom": ex.idiom}
        if al is None:
            row.update(aligned=False, covers=False, clean=False, extra_chars=-1)
            row.update(reason=skipped.get(ex.id, "not in the aligned corpus"))
        else:
            row.update(_coverage(ex, al, max_extra), aligned=True, reason="")
            if tokenizer is not None:
                row["decoded"] = tokenizer.decode(list(al.tokens[al.span[0] : al.span[1] + 1]))
        rows.append(row)
    columns = ["id", "idiom", "span_text", "s", "e", "n_tokens", "covers", "extra_chars"]
    columns += ["clean", "aligned", "reason"] + (["decoded"] if tokenizer is not None else [])
    df = pd.DataFrame(rows, columns=columns)
    df.attrs["clean_fraction"] = float(df["clean"].mean()) if len(df) else 1.0
    return df


def _coverage(ex: IdiomExample, al: AlignedExample, max_extra: int) -> dict[str, Any]:
    """Coverage of one aligned example: characters covered, extras, cleanliness."""
    s, e = al.span
    lo, hi = al.offsets[s][0], al.offsets[e][1]
    a, b = core_span(ex)
    covers = lo <= a and hi >= b
    outside = ex.text[lo:a] + ex.text[b:hi] if covers else ex.text[lo:hi]
    extra = sum(not ch.isspace() for ch in outside) if covers else -1
    return {
        "span_text": ex.text[lo:hi],
        "s": s,
        "e": e,
        "n_tokens": e - s + 1,
        "covers": covers,
        "extra_chars": extra,
        "clean": covers and extra <= max_extra,
    }
