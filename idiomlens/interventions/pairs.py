"""Length-matched clean/corrupted token pairs for activation patching.

Patching overwrites activations position by position, so the clean and the corrupted
sentence of a pair must have the same number of tokens. :func:`make_patching_pairs`
builds such pairs from a corpus:

* ``mode="paraphrase"``: each figurative sentence (clean) with its paraphrase
  (corrupted), found by id: ``paraphrase_id(clean_id)``, by default
  :func:`default_paraphrase_id` (``"formal-000123" -> "trans-000123"``, the EPIE
  ``trans`` split's ids, see ``load_epie``);
* ``mode="other_idiom"``: each sentence with a sentence of a *different* idiom
  (drawn with a seeded local generator among the candidates of equal length).

``length="equal"`` keeps only pairs of equal token length; ``length="truncate"`` cuts
both sentences to the shorter length (keeping the first tokens) when both idiom spans
survive the cut. Pairs of different lengths are right-padded into one tensor;
``lengths`` tells the real length of each pair and :meth:`PatchingPairs.by_length`
splits them into unpadded groups.

>>> import idiomlens
>>> from idiomlens.data import IdiomCorpus, IdiomExample
>>> corpus = IdiomCorpus([
...     IdiomExample("formal-000001", "He kicked the bucket.", (3, 20)),
...     IdiomExample("trans-000001", "He kicked the ball.", (3, 18)),
... ])
>>> pairs = make_patching_pairs(idiomlens.tiny_model(), corpus)
>>> pairs.ids, pairs.clean_tokens.shape
(('formal-000001|trans-000001',), torch.Size([1, 10]))
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from ..data.align import AlignedExample, align, get_tokenizer

__all__ = ["PatchingPairs", "make_patching_pairs", "default_paraphrase_id"]

log = logging.getLogger(__name__)

MODES = ("paraphrase", "other_idiom")
LENGTHS = ("equal", "truncate")


def default_paraphrase_id(example_id: str, prefix: str = "trans") -> str:
    """Replace the id's prefix (before the last ``-``) by ``prefix``.

    >>> default_paraphrase_id("formal-000123")
    'trans-000123'
    """
    head, sep, tail = example_id.rpartition("-")
    return f"{prefix}-{tail}" if sep else f"{prefix}-{example_id}"


@dataclass(frozen=True)
class PatchingPairs:
    """Clean/corrupted token pairs, right-padded to a common width.

    Attributes:
        clean_tokens, corrupted_tokens: ``[pair, pos]`` token ids (BOS first when the
            corpus was aligned with ``prepend_bos``), right-padded with ``pad_id``.
        lengths: ``[pair]`` real length of each pair (equal for its two sentences).
        clean_spans, corrupted_spans: ``[pair, 2]`` inclusive idiom token spans.
        clean_ids, corrupted_ids: example ids; ``ids`` joins them as ``"clean|corrupted"``.
        skipped: clean example id -> why it got no pair.
    """

    clean_tokens: Int[Tensor, "pair pos"]
    corrupted_tokens: Int[Tensor, "pair pos"]
    lengths: Int[Tensor, " pair"]
    clean_spans: Int[Tensor, "pair 2"]
    corrupted_spans: Int[Tensor, "pair 2"]
    clean_ids: tuple[str, ...]
    corrupted_ids: tuple[str, ...]
    pad_id: int = 0
    skipped: dict[str, str] = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.clean_ids)

    @property
    def ids(self) -> tuple[str, ...]:
        """Pair ids ``"clean_id|corrupted_id"``."""
        return tuple(f"{a}|{b}" for a, b in zip(self.clean_ids, self.corrupted_ids, strict=True))

    def select(self, indices: Sequence[int]) -> PatchingPairs:
        """The pairs at ``indices``, trimmed to their longest length."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        if idx.numel() == 0:
            raise ValueError("select() needs at least one pair index")
        width = int(self.lengths[idx].max())
        return PatchingPairs(
            clean_tokens=self.clean_tokens[idx, :width],
            corrupted_tokens=self.corrupted_tokens[idx, :width],
            lengths=self.lengths[idx],
            clean_spans=self.clean_spans[idx],
            corrupted_spans=self.corrupted_spans[idx],
            clean_ids=tuple(self.clean_ids[i] for i in idx.tolist()),
            corrupted_ids=tuple(self.corrupted_ids[i] for i in idx.tolist()),
            pad_id=self.pad_id,
        )

    def by_length(self) -> dict[int, PatchingPairs]:
        """Unpadded groups of pairs with the same length, keyed by length (ascending)."""
        lengths = self.lengths.tolist()
        return {
            n: self.select([i for i, m in enumerate(lengths) if m == n])
            for n in sorted(set(lengths))
        }


def _idiom_key(example: Any) -> str:
    return str(example.meta.get("idiom", example.idiom)).strip().lower()


def _fit(clean: AlignedExample, corrupted: AlignedExample, length: str) -> tuple[int | None, str]:
    """The pair's common length, or ``None`` and the reason it does not fit."""
    if len(clean) == len(corrupted):
        return len(clean), ""
    if length == "equal":
        return None, f"token lengths differ ({len(clean)} vs {len(corrupted)})"
    n = min(len(clean), len(corrupted))
    if clean.span[1] >= n or corrupted.span[1] >= n:
        return None, f"an idiom span does not survive truncation to {n} tokens"
    return n, ""


def _paraphrase_pairs(
    clean: list[AlignedExample],
    others: dict[str, AlignedExample],
    paraphrase_id: Callable[[str], str],
    length: str,
) -> tuple[list[tuple[AlignedExample, AlignedExample, int]], dict[str, str]]:
    pairs, skipped = [], {}
    for a in clean:
        b = others.get(paraphrase_id(a.id))
        if b is None or b.id == a.id:
            skipped[a.id] = f"no paraphrase {paraphrase_id(a.id)!r}"
            continue
        n, why = _fit(a, b, length)
        if n is None:
            skipped[a.id] = why
        else:
            pairs.append((a, b, n))
    return pairs, skipped


def _other_idiom_pairs(
    clean: list[AlignedExample],
    others: list[AlignedExample],
    idiom_of: dict[str, str],
    length: str,
    seed: int,
) -> tuple[list[tuple[AlignedExample, AlignedExample, int]], dict[str, str]]:
    generator = torch.Generator().manual_seed(seed)
    by_length: dict[int, list[AlignedExample]] = {}
    for b in others:  # with length="equal" only same-length sentences can fit
        by_length.setdefault(len(b), []).append(b)
    pairs, skipped = [], {}
    for a in clean:
        pool = by_length.get(len(a), []) if length == "equal" else others
        fits = [(b, _fit(a, b, length)[0]) for b in pool if idiom_of[b.id] != idiom_of[a.id]]
        fits = [(b, n) for b, n in fits if n is not None]
        if not fits:
            skipped[a.id] = f"no other-idiom sentence fits ({length} length)"
            continue
        b, n = fits[int(torch.randint(len(fits), (1,), generator=generator))]
        pairs.append((a, b, n))
    return pairs, skipped


def make_patching_pairs(
    model: Any,
    corpus: Iterable[Any],
    *,
    mode: str = "paraphrase",
    others: Iterable[Any] | None = None,
    paraphrase_id: Callable[[str], str] = default_paraphrase_id,
    labels: Sequence[str] = ("figurative",),
    length: str = "equal",
    prepend_bos: bool = True,
    seed: int = 0,
) -> PatchingPairs:
    """Build length-matched clean/corrupted token pairs from a corpus (module docstring).

    Args:
        model: a model with a tokenizer, or a fast tokenizer.
        corpus: the clean candidates (an ``IdiomCorpus``); only examples whose label is
            in ``labels`` are clean sentences.
        mode: ``"paraphrase"`` or ``"other_idiom"``.
        others: where corrupted sentences come from; default ``corpus`` itself (e.g. a
            corpus holding both the ``formal`` and the ``trans`` split).
        paraphrase_id: clean id -> its paraphrase's id (``"paraphrase"`` mode).
        labels: labels of the clean sentences.
        length: ``"equal"`` (keep equal token lengths only) or ``"truncate"``.
        prepend_bos: prepend BOS to both sentences (as ``align``).
        seed: seed of the local generator choosing partners in ``"other_idiom"`` mode.

    Returns:
        :class:`PatchingPairs` in corpus order; ``skipped`` says why a sentence got no pair.

    Raises:
        ValueError: bad ``mode``/``length``, or no pair could be built (with the reasons).
    """
    if mode not in MODES or length not in LENGTHS:
        raise ValueError(
            f"mode must be one of {MODES} and length one of {LENGTHS}, "
            f"got mode={mode!r}, length={length!r}"
        )
    corpus = list(corpus)
    other_examples = corpus if others is None else list(others)
    tokenizer = get_tokenizer(model)
    max_length = getattr(getattr(model, "cfg", None), "n_ctx", None)
    kw = {"prepend_bos": prepend_bos, "max_length": max_length, "on_error": "skip"}
    clean = [a for a in align(corpus, tokenizer, **kw) if a.label in labels]
    if mode == "paraphrase":  # a paraphrase is never a clean sentence of its own
        clean = [a for a in clean if paraphrase_id(a.id) != a.id]
    aligned_others = align(other_examples, tokenizer, **kw)
    if mode == "paraphrase":
        by_id = {b.id: b for b in aligned_others}
        pairs, skipped = _paraphrase_pairs(clean, by_id, paraphrase_id, length)
    else:
        idiom_of = {e.id: _idiom_key(e) for e in [*corpus, *other_examples]}
        pairs, skipped = _other_idiom_pairs(clean, list(aligned_others), idiom_of, length, seed)
    if not pairs:
        reasons = Counter(skipped.values()).most_common(3)
        raise ValueError(
            f"no {mode} pair could be built from {len(clean)} clean sentences "
            f"(labels {tuple(labels)}, length={length!r}); most common reasons: {reasons}"
        )
    if skipped:
        log.info("make_patching_pairs: %d of %d sentences got no pair", len(skipped), len(clean))
    return _stack(pairs, pad_id=tokenizer.pad_token_id or 0, skipped=skipped)


def _stack(
    pairs: list[tuple[AlignedExample, AlignedExample, int]], *, pad_id: int, skipped: dict
) -> PatchingPairs:
    width = max(n for _, _, n in pairs)
    clean = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    corrupted = torch.full_like(clean, pad_id)
    for i, (a, b, n) in enumerate(pairs):
        clean[i, :n] = torch.tensor(a.tokens[:n])
        corrupted[i, :n] = torch.tensor(b.tokens[:n])
    return PatchingPairs(
        clean_tokens=clean,
        corrupted_tokens=corrupted,
        lengths=torch.tensor([n for _, _, n in pairs]),
        clean_spans=torch.tensor([a.span for a, _, _ in pairs]),
        corrupted_spans=torch.tensor([b.span for _, b, _ in pairs]),
        clean_ids=tuple(a.id for a, _, _ in pairs),
        corrupted_ids=tuple(b.id for _, b, _ in pairs),
        pad_id=pad_id,
        skipped=skipped,
    )
