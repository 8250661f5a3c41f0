"""Pure, batched idiom and literal head features (METHODS.md, "Idiom score", "Literal score").

Every function here is tensor-in/tensor-out on one layer's stacked attention patterns
``A: [batch, head_index, query_pos, key_pos]`` in *padded* coordinates, together with a
:class:`ScoringLayout` of per-example position masks built once per batch. There is no
Python loop over examples, heads, rows or columns:

- ``mean`` / ``neg_std``: masked reductions over the scored ``(q, k)`` pairs;
- ``max``: one argmax per row and per column (ties -> smaller index), then a mode found
  by counting winners with ``scatter_add`` (ties -> smaller value);
- ``phrase``: the ``K``-th largest value ``t`` of every row / column from one small
  ``topk`` (``K <= n`` for the idiom score; for the literal score the ``K``-th largest is
  the ``(C - K + 1)``-th smallest of ``C`` candidates, again a small ``topk``); the
  top-``K`` set is then ``{A > t}`` plus the smallest-index candidates equal to ``t``
  (a ``cumsum`` over ties, only when a tie straddles the cut);
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
        c_rows, c_cols: number of candidates of each row / column.
        kind: ``"idiom"`` or ``"literal"``.
    """

    valid: Bool[Tensor, "batch query_pos key_pos"]
    pairs: Bool[Tensor, "batch query_pos key_pos"]
    items: Bool[Tensor, "batch pos"]
    max_rows: Bool[Tensor, "batch pos"]
    max_cols: Bool[Tensor, "batch pos"]
    k_rows: Int[Tensor, "batch pos"]
    k_cols: Int[Tensor, "batch pos"]
    c_rows: Int[Tensor, "batch pos"]
    c_cols: Int[Tensor, "batch pos"]
    kind: str

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
            sets = (idiom, max_rows, max_cols, k_rows, k_cols)
        else:
            lit = batch.literal_mask()
            pairs = valid & lit[:, :, None] & lit[:, None, :]
            n_before = lit.long().cumsum(-1)  # |{k in L : k <= q}|
            n_after = lit.long().flip(-1).cumsum(-1).flip(-1)  # |{q in L : q >= c}|
            k_rows = torch.where(scored, n_before, 0)
            k_cols = torch.where(scored, n_after, 0)
            sets = (lit, lit, lit, k_rows, k_cols)
        c_rows, c_cols = valid.sum(-1), valid.sum(-2)
        return cls(valid, pairs, *sets, c_rows, c_cols, kind)


def _set_mean(values: Tensor, counted: Tensor, dim: int) -> Tensor:
    """Mean of ``values`` where ``counted`` along ``dim``; an empty set gives 0."""
    total = torch.where(counted, values, 0.0).sum(dim)
    return total / counted.sum(dim).clamp(min=1)


def _mean_neg_std(pattern: Tensor, pairs: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and minus the unbiased std of ``pattern`` over ``pairs`` (``[b, h]`` each).

    Two-pass (centred) for accuracy; both masked sums are one batched matmul each.
    """
    weights = einops.rearrange(pairs.to(pattern.dtype), "b q k -> b (q k) 1")
    flat = einops.rearrange(pattern, "b h q k -> b h (q k)")
    n = weights.sum(1)  # [b, 1]
    mean = (flat @ weights)[..., 0] / n.clamp(min=1)  # [b, h]
    centred = flat - mean[..., None]
    sq = (centred.square_() @ weights)[..., 0]
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


def _kth_largest(lines: Tensor, k: Tensor, c: Tensor) -> Tensor:
    """The ``K``-th largest candidate value of each line ``[b, h, p, :]``, as ``[b, h, p, 1]``.

    ``lines`` holds candidates and ``-inf`` elsewhere; ``k`` / ``c`` ``[b, p]`` are ``K``
    and the number of candidates. The ``K``-th largest is the ``(C - K + 1)``-th smallest,
    so one small ``topk`` suffices whichever of ``K`` and ``C - K + 1`` is small (idiom:
    ``K <= n``; literal: ``C - K + 1 <= n + 2``). Values only: ties do not matter here.
    """
    k_large = int(k.max())
    k_small = int(torch.where(k > 0, c - k + 1, 0).max())
    if k_large <= k_small:
        vals, index = (
            lines.topk(k_large, dim=-1, sorted=False).values.sort(-1, descending=True).values,
            k - 1,
        )
    else:
        high = lines.nan_to_num(neginf=torch.inf)  # non-candidates last (one fused pass)
        vals, index = (
            high.topk(k_small, dim=-1, largest=False, sorted=False).values.sort(-1).values,
            c - k,
        )
    index = index.clamp(0, vals.shape[-1] - 1)[:, None, :, None]  # [b, 1, p, 1]
    return vals.gather(-1, index.expand(*vals.shape[:-1], 1))


def _tie_hits(lines: Tensor, t: Tensor, items: Tensor, k: Tensor, todo: Tensor) -> Tensor:
    """Exact top-``K`` item counts for the ``todo`` lines (``[b, h, p]`` mask) whose
    ``K``-th value is tied: all candidates above ``t``, then ties by increasing index."""
    b, h, p = todo.nonzero(as_tuple=True)
    vals, thr = lines[b, h, p], t[b, h, p]  # [n, pos], [n, 1]
    above = vals > thr
    need = k[b, p][:, None] - above.sum(-1, keepdim=True)
    tie = vals == thr
    chosen = above | (tie & (tie.cumsum(-1) <= need))
    return (chosen & items[b]).sum(-1)


def _topk_fraction(lines: Tensor, items: Tensor, k: Tensor, c: Tensor) -> Tensor:
    """Mean over scored lines of the fraction of their top-``K`` candidates in ``items``.

    ``lines [b, h, p, :]`` are rows of a pattern (candidates: keys) or, transposed, its
    columns (candidates: queries), with ``-inf`` for non-candidates. A line with
    ``K = k[b, p] > 0`` takes its top-``K`` candidates (value descending, smaller index
    first on ties); lines with ``K = 0`` are not scored. Returns ``[b, h]``.

    Every candidate strictly above the ``K``-th largest value ``t`` is in the top-``K``;
    of the candidates equal to ``t``, the ones with the smallest indices fill the rest
    (handled exactly, and only for the lines where such a tie straddles the cut).
    """
    if int(k.max()) == 0:
        return lines.new_zeros(lines.shape[:2])
    t = _kth_largest(lines, k, c)
    k_b = k[:, None, :]  # [b, 1, p]
    scored = k_b > 0
    at_least = (lines >= t).to(lines.dtype)
    # one batched matmul counts, per line, the members and all candidates >= t
    weights = torch.stack([items.to(lines.dtype), torch.ones_like(lines[:, 0, 0])], -1)
    hits, n_at_least = (at_least @ weights[:, None]).unbind(-1)  # [b, h, p] each
    straddle = (n_at_least != k_b) & scored
    if bool(straddle.any()):
        hits[straddle] = _tie_hits(lines, t, items, k, straddle).to(hits.dtype)
    return _set_mean(hits / k_b.clamp(min=1), scored, -1)


def attention_features(
    pattern: Float[Tensor, "batch head_index query_pos key_pos"], layout: ScoringLayout
) -> Float[Tensor, "batch head_index 4"]:
    """The pattern features ``mean, neg_std, max, phrase`` of every head (float32).

    ``pattern`` is one layer's ``hook_pattern`` on a padded batch; ``layout`` says which
    cells, rows and columns each feature reads (see :class:`ScoringLayout`).
    """
    pattern = pattern.float()
    masked = pattern.masked_fill(~layout.valid[:, None], -torch.inf)  # candidates, -inf else
    columns = masked.transpose(-1, -2).contiguous()  # [b, h, k, q]: each column as a row
    mean, neg_std = _mean_neg_std(pattern, layout.pairs)
    max_feat = 0.5 * (  # argmax: first maximum -> smaller index on ties
        _mode_fraction(masked.argmax(-1), layout.max_rows, layout.items)
        + _mode_fraction(columns.argmax(-1), layout.max_cols, layout.items)
    )
    phrase = 0.5 * (
        _topk_fraction(masked, layout.items, layout.k_rows, layout.c_rows)
        + _topk_fraction(columns, layout.items, layout.k_cols, layout.c_cols)
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
