"""Padded batches with masks, grouped by length under a token budget.

Every batched analysis in idiomlens iterates :func:`iter_batches` and scatters its
per-example results back with ``batch.indices``, so results keep corpus order and never
depend on batch composition.

Padding: with ``padding_side="right"`` (default) example ``b`` occupies positions
``0 .. T_b-1``; causal attention means real positions never see padding, so no attention
mask is needed and positions are unchanged. With ``"left"`` it occupies
``P-T_b .. P-1`` and the model gets ``attention_mask`` (TransformerLens then shifts
positional embeddings). All positions stored on a :class:`Batch` are padded-coordinate
indices; ``offsets`` gives where each example starts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from .align import AlignedExample

__all__ = ["Batch", "iter_batches", "make_batch", "plan_groups", "DEFAULT_BATCH_TOKENS"]

#: Default token budget per batch (padded tokens = batch size x longest length).
DEFAULT_BATCH_TOKENS = 8192


@dataclass(frozen=True)
class Batch:
    """A padded batch of aligned examples.

    Attributes:
        tokens: ``[batch, pos]`` token ids, padded with ``pad_id``.
        attention_mask: ``[batch, pos]`` 1 for real tokens, 0 for padding.
        lengths: ``[batch]`` number of real tokens ``T_b``.
        offsets: ``[batch]`` padded index of each example's first real token.
        spans: ``[batch, 2]`` inclusive idiom span ``(s, e)`` in padded coordinates.
        p0: ``[batch]`` 1 where BOS was prepended.
        indices: ``[batch]`` positions of the examples in the aligned corpus.
        ids: example ids.
        padding_side: ``"right"`` or ``"left"``.
    """

    tokens: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    lengths: Int[Tensor, " batch"]
    offsets: Int[Tensor, " batch"]
    spans: Int[Tensor, "batch 2"]
    p0: Int[Tensor, " batch"]
    indices: Int[Tensor, " batch"]
    ids: tuple[str, ...]
    padding_side: str

    @property
    def size(self) -> int:
        """Number of examples in the batch."""
        return self.tokens.shape[0]

    @property
    def n_pos(self) -> int:
        """Padded length (the ``pos`` axis)."""
        return self.tokens.shape[1]

    def positions(self) -> Int[Tensor, "batch pos"]:
        """Each slot's real position index (``pos - offset``); negative on left padding."""
        pos = torch.arange(self.n_pos, device=self.tokens.device)
        return pos[None, :] - self.offsets[:, None]

    def real_mask(self) -> Bool[Tensor, "batch pos"]:
        """``True`` on real tokens (BOS included)."""
        return self.attention_mask.bool()

    def scored_mask(self) -> Bool[Tensor, "batch pos"]:
        """``True`` on real tokens except BOS: the positions ``p0 <= p < T``."""
        return self.real_mask() & (self.positions() >= self.p0[:, None])

    def idiom_mask(self) -> Bool[Tensor, "batch pos"]:
        """``True`` on the idiom span ``I = [s, e]``."""
        pos = torch.arange(self.n_pos, device=self.tokens.device)[None, :]
        return (pos >= self.spans[:, :1]) & (pos <= self.spans[:, 1:])

    def literal_mask(self) -> Bool[Tensor, "batch pos"]:
        """``True`` on the literal set ``L``: real, not BOS, not in the idiom span."""
        return self.scored_mask() & ~self.idiom_mask()

    def forward_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``model(...)`` / ``run_with_hooks`` on this batch."""
        if self.padding_side == "left":
            return {"attention_mask": self.attention_mask}
        return {}

    def to(self, device: str | torch.device) -> Batch:
        """The same batch with every tensor on ``device``."""
        moved = {
            k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()
        }
        return Batch(**moved)


def make_batch(
    examples: Sequence[AlignedExample],
    *,
    padding_side: str = "right",
    pad_id: int = 0,
    indices: Sequence[int] | None = None,
    device: str | torch.device | None = None,
) -> Batch:
    """Pad ``examples`` into one :class:`Batch`.

    ``indices`` default to each example's ``index`` (its corpus position).

    >>> from idiomlens.data import IdiomExample, align
    >>> from idiomlens.models import tiny_tokenizer
    >>> al = align([IdiomExample("a", "Break a leg!", (0, 11)),
    ...             IdiomExample("b", "He spilled the beans.", (3, 20))], tiny_tokenizer())
    >>> batch = make_batch(al, padding_side="left")
    >>> batch.tokens.shape[0], batch.ids, batch.padding_side
    (2, ('a', 'b'), 'left')
    """
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
    if not examples:
        raise ValueError("cannot make a batch of zero examples")
    n, width = len(examples), max(len(ex) for ex in examples)
    tokens = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    offsets = torch.zeros(n, dtype=torch.long)
    for b, ex in enumerate(examples):
        t = len(ex)
        start = width - t if padding_side == "left" else 0
        tokens[b, start : start + t] = torch.tensor(ex.tokens)
        mask[b, start : start + t] = 1
        offsets[b] = start
    spans = torch.tensor([ex.span for ex in examples], dtype=torch.long) + offsets[:, None]
    batch = Batch(
        tokens=tokens,
        attention_mask=mask,
        lengths=torch.tensor([len(ex) for ex in examples]),
        offsets=offsets,
        spans=spans,
        p0=torch.tensor([ex.p0 for ex in examples]),
        indices=torch.tensor(
            list(indices) if indices is not None else [ex.index for ex in examples]
        ),
        ids=tuple(ex.id for ex in examples),
        padding_side=padding_side,
    )
    return batch.to(device) if device is not None else batch


def iter_batches(
    examples: Sequence[AlignedExample],
    *,
    batch_tokens: int | None = None,
    batch_size: int | None = None,
    padding_side: str = "right",
    pad_id: int = 0,
    sort_by_length: bool = True,
    device: str | torch.device | None = None,
) -> Iterator[Batch]:
    """Yield padded batches whose ``batch x longest length`` stays within ``batch_tokens``.

    Examples are grouped by length (longest first, ties in corpus order) so padding is
    small; ``batch.indices`` holds each example's position in ``examples`` so results can be
    scattered back in order. ``batch_size`` additionally caps the number of examples.
    An example longer than ``batch_tokens`` gets a batch of its own.

    >>> from idiomlens.data import IdiomExample, align
    >>> from idiomlens.models import tiny_tokenizer
    >>> al = align([IdiomExample("a", "Break a leg!", (0, 11))], tiny_tokenizer())
    >>> [b.tokens.shape[0] for b in iter_batches(al)]
    [1]
    """
    budget = DEFAULT_BATCH_TOKENS if batch_tokens is None else batch_tokens
    lengths = [len(ex) for ex in examples]
    for group in plan_groups(lengths, budget, batch_size, sort=sort_by_length):
        yield _batch(examples, group, padding_side, pad_id, device)


def plan_groups(
    lengths: Sequence[int], budget: int, batch_size: int | None = None, *, sort: bool = True
) -> Iterator[list[int]]:
    """Groups of example indices whose padded size ``len(group) x longest`` stays within
    ``budget`` (at most ``batch_size`` each); an over-long example gets a group alone.

    With ``sort`` (default) examples are taken longest first, ties in corpus order, so
    padding is small; otherwise in corpus order.

    >>> list(plan_groups([3, 5, 2, 5], budget=10))
    [[1, 3], [0, 2]]
    >>> list(plan_groups([3, 5, 2, 5], budget=10, sort=False))
    [[0, 1], [2, 3]]
    """
    if budget < 1 or (batch_size is not None and batch_size < 1):
        raise ValueError(
            f"batch_tokens and batch_size must be positive, got {budget}, {batch_size}"
        )
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i]) if sort else range(len(lengths))
    group: list[int] = []
    width = 0
    for i in order:
        new_width = max(width, lengths[i])
        full = batch_size is not None and len(group) >= batch_size
        if group and (full or new_width * (len(group) + 1) > budget):
            yield group
            group, new_width = [], lengths[i]
        group.append(i)
        width = new_width
    if group:
        yield group


def _batch(examples, group, padding_side, pad_id, device) -> Batch:  # type: ignore[no-untyped-def]
    return make_batch(
        [examples[i] for i in group],
        padding_side=padding_side,
        pad_id=pad_id,
        indices=group,
        device=device,
    )
