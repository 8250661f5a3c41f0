"""Character span -> token span alignment (METHODS.md, "Notation").

The idiom token span ``I = [s, e]`` (inclusive) is the set of tokens whose character
offsets overlap the example's span ``[a, b)``, read from the fast tokenizer's offset
mapping. BOS, when prepended, is token 0 and never inside ``I`` (``s >= p0``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .example import IdiomExample

__all__ = ["AlignedExample", "AlignedCorpus", "AlignmentError", "align", "get_tokenizer"]

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
    """

    id: str
    tokens: tuple[int, ...]
    span: tuple[int, int]
    p0: int
    label: str
    index: int
    offsets: tuple[tuple[int, int], ...]
    text: str

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
        return tuple(a.id for a in self)


def get_tokenizer(tokenizer_or_model: Any) -> Any:
    """Return the HF tokenizer of a model (``.tokenizer``) or the tokenizer itself."""
    tok = getattr(tokenizer_or_model, "tokenizer", tokenizer_or_model)
    if tok is None:
        raise ValueError("the model has no tokenizer; pass one explicitly")
    return tok


def _context_length(tokenizer_or_model: Any, max_length: int | None) -> int | None:
    if max_length is not None:
        return max_length
    cfg = getattr(tokenizer_or_model, "cfg", None)
    return getattr(cfg, "n_ctx", None)


def align_one(
    example: IdiomExample,
    tokenizer: Any,
    *,
    prepend_bos: bool = True,
    index: int = 0,
    max_length: int | None = None,
) -> AlignedExample:
    """Align one example; raises :class:`AlignmentError` naming the example id."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            f"{type(tokenizer).__name__} is not a fast (Rust) tokenizer: character offsets "
            "are needed to align idiom spans; load it with use_fast=True"
        )
    enc = tokenizer(example.text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    p0 = 0
    if prepend_bos:
        bos = tokenizer.bos_token_id
        if bos is None:
            raise AlignmentError(f"example {example.id!r}: tokenizer has no BOS token")
        ids, offsets, p0 = [bos, *ids], [(0, 0), *offsets], 1
    a, b = example.span
    inside = [i for i in range(p0, len(ids)) if offsets[i][0] < b and offsets[i][1] > a]
    if not inside:
        raise AlignmentError(
            f"example {example.id!r}: span {example.span} ({example.idiom!r}) covers no token"
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
    )


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
        An :class:`AlignedCorpus` (a list of :class:`AlignedExample`, corpus order).

    >>> from idiomlens.models import tiny_tokenizer
    >>> ex = IdiomExample("a", "He spilled the beans.", (3, 20))
    >>> [al] = align([ex], tiny_tokenizer())
    >>> al.span_text
    ' spilled the beans'
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    tok = get_tokenizer(tokenizer)
    limit = _context_length(tokenizer, max_length)
    out, skipped = [], {}
    for i, ex in enumerate(corpus):
        try:
            out.append(align_one(ex, tok, prepend_bos=prepend_bos, index=i, max_length=limit))
        except AlignmentError as err:
            if on_error == "raise":
                raise
            skipped[ex.id] = str(err)
            log.warning("skipping: %s", err)
    return AlignedCorpus(out, skipped)
