"""Pure, batched idiom and literal head features (METHODS.md, "Idiom score", "Literal score").

Every function here is tensor-in/tensor-out on one layer's stacked attention patterns
``A: [batch, head_index, query_pos, key_pos]`` in *padded* coordinates, together with a
:class:`ScoringLayout` of per-example position masks built once per batch. There is no
Python loop over examples, heads, rows or columns:

- ``mean`` / ``neg_std``: masked reductions over the scored ``(q, k)`` pairs;
- ``max``: one argmax per row and per column (ties -> smaller index), then a mode found
  by counting winners with ``scatter_add`` (ties -> smaller value);
- ``phrase``: one ordering of every row / column with exact tie-breaking (value
  descending, index ascending) via integer sort keys, a cumulative count of set members
  along that order, and a per-row / per-column ``K`` read off with ``gather``;
- ``contribution``: per-head output norms ``||z_h W_O[h]||`` from the Gram matrices
  ``W_O[h] W_O[h]^T`` (``[batch, pos, head, d_model]`` is never built).

Candidates of an argmax / top-K are the real keys ``k <= q`` of a row (BOS included) or
the real queries ``q >= k`` of a column; padding never is one. BOS is never an item:
its row and column are never scored. All features are computed in float32.

>>> from idiomlens.data import AlignedExample, make_batch
>>> ex = AlignedExample("a", (0, 5, 6, 7), (1, 2), 1, "figurative", 0, ((0, 0),) * 4, "")
>>> batch = make_batch([ex])
>>> pattern = torch.tril(torch.ones(4, 4)) / torch.arange(1, 5)[:, None]  # uniform rows
>>> layout = ScoringLayout.from_batch(batch, "idiom")
>>> attention_features(pattern[None, None], layout).shape
torch.Size([1, 1, 4])
"""

from __future__ import annotations

from dataclasses import dataclass

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..data.batching import Batch

__all__ = [
    "FEATURE_NAMES",
    "KINDS",
    "ScoringLayout",
    "attention_features",
    "contribution_feature",
    "head_output_share",
    "output_gram",
    "head_features",
]

#: Feature order along the last axis of every feature tensor.
FEATURE_NAMES: tuple[str, ...] = ("mean", "neg_std", "max", "phrase", "contribution")
#: Which item set a score is about: the idiom span ``I`` or the literal set ``L``.
KINDS: tuple[str, ...] = ("idiom", "literal")


@dataclass(frozen=True)
class ScoringLayout:
    """Per-example position masks for one padded batch and one ``kind``.

    Attributes:
        valid: ``[batch, query_pos, key_pos]`` real causal cells (``k <= q``, both real,
            BOS included): the argmax / top-K candidates.
        pairs: cells averaged by ``mean`` / ``neg_std``.
        items: ``[batch, pos]`` the item set (``I`` or ``L``).
        max_rows, max_cols: rows / columns whose argmax enters the ``max`` mode.
        k_rows, k_cols: ``K`` of each row / column for ``phrase`` (0: not scored).
    """

    valid: Bool[Tensor, "batch query_pos key_pos"]
    pairs: Bool[Tensor, "batch query_pos key_pos"]
    items: Bool[Tensor, "batch pos"]
    max_rows: Bool[Tensor, "batch pos"]
    max_cols: Bool[Tensor, "batch pos"]
    k_rows: Int[Tensor, "batch pos"]
    k_cols: Int[Tensor, "batch pos"]

    @classmethod
    def from_batch(cls, batch: Batch, kind: str) -> ScoringLayout:
        """Build the masks of METHODS.md for ``kind`` (``"idiom"`` or ``"literal"``)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        pos = torch.arange(batch.n_pos, device=batch.tokens.device)[None, :]
        real, scored = batch.real_mask(), batch.scored_mask()
        causal = pos[:, :, None] >= pos[:, None, :]  # [1, q, k]
        valid = causal & real[:, :, None] & real[:, None, :]
        s, e = batch.spans[:, :1], batch.spans[:, 1:]  # [batch, 1], padded coords
        if kind == "idiom":
            idiom = batch.idiom_mask()
            pairs = valid & scored[:, None, :] & (idiom[:, :, None] | idiom[:, None, :])
            max_rows = real & (pos >= s)  # q = s .. T-1
            max_cols = scored & (pos <= e)  # k = p0 .. e
            n = e - s + 1
            k_rows = torch.where(max_rows, torch.minimum(pos - s + 1, n), 0)
            k_cols = torch.where(max_cols, torch.where(pos >= s, e - pos + 1, n), 0)
            return cls(valid, pairs, idiom, max_rows, max_cols, k_rows, k_cols)
        lit = batch.literal_mask()
        pairs = valid & lit[:, :, None] & lit[:, None, :]
        n_before = lit.long().cumsum(-1)  # |{k in L : k <= q}|
        n_after = lit.long().flip(-1).cumsum(-1).flip(-1)  # |{q in L : q >= c}|
        k_rows = torch.where(scored, n_before, 0)
        k_cols = torch.where(scored, n_after, 0)
        return cls(valid, pairs, lit, lit, lit, k_rows, k_cols)


def _set_mean(values: Tensor, counted: Tensor, dim: int) -> Tensor:
    """Mean of ``values`` where ``counted`` along ``dim``; an empty set gives 0."""
    total = torch.where(counted, values, 0.0).sum(dim)
    return total / counted.sum(dim).clamp(min=1)


def _mean_neg_std(pattern: Tensor, pairs: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and minus the unbiased std of ``pattern`` over ``pairs`` (``[b, h]`` each)."""
    cells = pairs[:, None]  # [b, 1, q, k]
    n = cells.sum((-2, -1))  # [b, 1]
    mean = torch.where(cells, pattern, 0.0).sum((-2, -1)) / n.clamp(min=1)
    sq = torch.where(cells, (pattern - mean[..., None, None]) ** 2, 0.0).sum((-2, -1))
    std = torch.where(n >= 2, (sq / (n - 1).clamp(min=1)).sqrt(), 0.0)
    return mean, -std


def _mode_fraction(winners: Tensor, counted: Tensor, items: Tensor) -> Tensor:
    """``count(m) / |counted|`` if the mode ``m`` of ``winners`` is an item, else 0.

    ``winners [b, h, p]`` holds each row's (column's) argmax; only the ``counted [b, p]``
    rows (columns) enter the mode; a tie between modes takes the smaller position.
    """
    weight = counted[:, None, :].expand_as(winners).float()
    counts = torch.zeros_like(weight).scatter_add_(-1, winners, weight)  # [b, h, p]
    top, mode = counts.max(-1)  # first maximum -> smaller value on ties
    is_item = torch.gather(items.float()[:, None, :].expand_as(counts), -1, mode[..., None])
    return top * is_item[..., 0] / counted.sum(-1, keepdim=True).clamp(min=1)


def _order_keys(pattern: Tensor, valid: Tensor, dim: int) -> Tensor:
    """Int64 keys whose descending order is (value desc, index asc) along ``dim``.

    Attention weights are non-negative floats, whose IEEE bits are ordered like ints;
    appending the reversed index makes every key unique, so ``topk`` is exact and
    deterministic. Non-candidates get ``-1`` (below every candidate).
    """
    size = pattern.shape[dim]
    bits = pattern.contiguous().view(torch.int32).long()
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits) + 2**31  # monotone, >= 0
    index = torch.arange(size - 1, -1, -1, device=pattern.device)
    index = index.view(-1, 1) if dim == -2 else index
    return torch.where(valid[:, None], bits * size + index, -1)


def _topk_fraction(pattern: Tensor, valid: Tensor, items: Tensor, k: Tensor, dim: int) -> Tensor:
    """Mean over scored rows (``dim=-1``) or columns (``dim=-2``) of the item fraction.

    For each row (column) with ``K = k[..] > 0`` take its top-``K`` candidates (value
    descending, smaller index first) and the fraction of them in ``items``; average over
    the rows (columns) with ``K > 0``. Returns ``[b, h]``.
    """
    k_max = int(k.max())
    b, h = pattern.shape[:2]
    if k_max == 0:
        return pattern.new_zeros(b, h)
    order = _order_keys(pattern, valid, dim).topk(k_max, dim=dim).indices
    if dim == -1:  # order [b, h, q, K]: key indices of each row, best first
        member = items.float()[:, None, None, :].expand(*order.shape[:3], items.shape[-1])
        hits = member.gather(-1, order).cumsum(-1)
        at_k = hits.gather(-1, (k - 1).clamp(min=0)[:, None, :, None].expand(b, h, -1, 1))
        frac = at_k[..., 0]
    else:  # order [b, h, K, k]: query indices of each column, best first
        member = items.float()[:, None, :, None].expand(b, h, items.shape[-1], order.shape[-1])
        hits = member.gather(-2, order).cumsum(-2)
        at_k = hits.gather(-2, (k - 1).clamp(min=0)[:, None, None, :].expand(b, h, 1, -1))
        frac = at_k[..., 0, :]
    frac = frac / k[:, None, :].clamp(min=1)
    return _set_mean(frac, (k > 0)[:, None, :], -1)


def attention_features(
    pattern: Float[Tensor, "batch head_index query_pos key_pos"], layout: ScoringLayout
) -> Float[Tensor, "batch head_index 4"]:
    """The pattern features ``mean, neg_std, max, phrase`` of every head (float32).

    ``pattern`` is one layer's ``hook_pattern`` on a padded batch; ``layout`` says which
    cells, rows and columns each feature reads (see :class:`ScoringLayout`).
    """
    pattern = pattern.float()
    masked = pattern.masked_fill(~layout.valid[:, None], -torch.inf)
    row_win = masked.argmax(-1)  # [b, h, q]: best key of each row (first on ties)
    col_win = masked.argmax(-2)  # [b, h, k]: best query of each column
    mean, neg_std = _mean_neg_std(pattern, layout.pairs)
    max_feat = 0.5 * (
        _mode_fraction(row_win, layout.max_rows, layout.items)
        + _mode_fraction(col_win, layout.max_cols, layout.items)
    )
    phrase = 0.5 * (
        _topk_fraction(pattern, layout.valid, layout.items, layout.k_rows, -1)
        + _topk_fraction(pattern, layout.valid, layout.items, layout.k_cols, -2)
    )
    return torch.stack([mean, neg_std, max_feat, phrase], dim=-1)


def output_gram(
    W_O: Float[Tensor, "head_index d_head d_model"],
) -> Float[Tensor, "head_index d_head d_head"]:
    """Per-head Gram matrices ``W_O[h] W_O[h]^T`` (float32), so ``||z W_O[h]||^2 = z G z^T``."""
    W_O = W_O.float()
    return einops.einsum(W_O, W_O, "h d m, h e m -> h d e")


def head_output_share(
    z: Float[Tensor, "batch pos head_index d_head"], gram: Float[Tensor, "head_index d_head d_head"]
) -> Float[Tensor, "batch pos head_index"]:
    """``share_h(p) = ||r_h(p)|| / sum_h' ||r_h'(p)||`` with ``r_h = z_h W_O[h]`` (no ``b_O``).

    Positions where every head's output is zero get share 0 (``0 / 0 -> 0``).
    """
    z = z.float()
    zg = einops.einsum(z, gram, "b p h d, h d e -> b p h e")
    norm = (zg * z).sum(-1).clamp(min=0).sqrt()  # [b, p, h]
    total = norm.sum(-1, keepdim=True)
    return torch.where(total > 0, norm / total.clamp(min=torch.finfo(norm.dtype).tiny), 0.0)


def contribution_feature(
    z: Float[Tensor, "batch pos head_index d_head"],
    gram: Float[Tensor, "head_index d_head d_head"],
    layout: ScoringLayout,
) -> Float[Tensor, "batch head_index"]:
    """Mean over the item positions of each head's output share (empty set -> 0)."""
    share = head_output_share(z, gram)
    return _set_mean(share, layout.items[:, :, None], 1)


def head_features(
    pattern: Float[Tensor, "batch head_index query_pos key_pos"],
    z: Float[Tensor, "batch pos head_index d_head"],
    W_O: Float[Tensor, "head_index d_head d_model"],
    batch: Batch,
    kind: str = "idiom",
) -> Float[Tensor, "batch head_index 5"]:
    """All five features of one layer, in :data:`FEATURE_NAMES` order.

    A convenience over :func:`attention_features` and :func:`contribution_feature` for
    patterns and values you already hold (the runner calls the two parts from hooks).
    """
    layout = ScoringLayout.from_batch(batch, kind)
    contribution = contribution_feature(z, output_gram(W_O), layout)
    return torch.cat([attention_features(pattern, layout), contribution[..., None]], dim=-1)
