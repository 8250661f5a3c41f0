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


def _kth_largest(low: Tensor, high: Tensor | None, k: Tensor, c: Tensor, dim: int) -> Tensor:
    """The ``K``-th largest candidate value of each row (``dim=-1``) or column (``dim=-2``).

    ``low`` holds candidates and ``-inf`` elsewhere, ``high`` the same with ``+inf``
    (``None``: built on demand); ``k`` / ``c`` ``[b, p]`` are ``K`` and the number of
    candidates. The ``K``-th largest is the ``(C - K + 1)``-th smallest, so one small
    ``topk`` suffices whichever of ``K`` and ``C - K + 1`` is small (idiom: ``K <= n``;
    literal: ``C - K + 1 <= n + 2``). Values only: ties do not matter here.
    """
    scored = k > 0
    k_large = int(k.max())
    k_small = int(torch.where(scored, c - k + 1, 0).max())
    if k_large <= k_small:
        vals, index = low.topk(k_large, dim=dim).values, k - 1
    else:
        high = high if high is not None else low.masked_fill(low == -torch.inf, torch.inf)
        vals, index = high.topk(k_small, dim=dim, largest=False).values, c - k
    index = index.clamp(0, vals.shape[dim] - 1)[:, None]  # [b, 1, p]
    index = index[..., None] if dim == -1 else index[:, :, None, :]
    shape = list(vals.shape)
    shape[dim] = 1
    return vals.gather(dim, index.expand(shape))


def _tie_hits(low: Tensor, t: Tensor, items: Tensor, k: Tensor, lines: Tensor, dim: int) -> Tensor:
    """Exact top-``K`` item counts for the ``lines`` (``[b, h, p]`` mask) whose ``K``-th
    value is tied: all candidates above ``t``, then ties by increasing index."""
    b, h, p = lines.nonzero(as_tuple=True)
    if dim == -1:
        vals, thr = low[b, h, p], t[b, h, p]  # [n, pos], [n, 1]
    else:
        vals, thr = low[b, h, :, p], t[b, h, 0, p][:, None]
    above = vals > thr
    need = k[b, p][:, None] - above.sum(-1, keepdim=True)
    tie = vals == thr
    chosen = above | (tie & (tie.cumsum(-1) <= need))
    return (chosen & items[b]).sum(-1)


def _topk_fraction(
    low: Tensor, items: Tensor, k: Tensor, c: Tensor, dim: int, high: Tensor | None = None
) -> Tensor:
    """Mean over scored rows (``dim=-1``) or columns (``dim=-2``) of the item fraction.

    For each row (column) with ``K = k[..] > 0`` take its top-``K`` candidates (value
    descending, smaller index first on ties) and the fraction of them in ``items``;
    average over the rows (columns) with ``K > 0``. ``low``: candidates, ``-inf``
    elsewhere. Returns ``[b, h]``.

    Every candidate strictly above the ``K``-th largest value ``t`` is in the top-``K``;
    of the candidates equal to ``t``, the ones with the smallest indices fill the rest.
    """
    b, h = low.shape[:2]
    if int(k.max()) == 0:
        return low.new_zeros(b, h)
    t = _kth_largest(low, high, k, c, dim)
    k_b = k[:, None, :]  # [b, 1, p]
    scored = k_b > 0
    at_least = (low >= t).to(low.dtype)
    # one batched matmul counts, per line, the members and all candidates >= t
    weights = torch.stack([items.to(low.dtype), torch.ones_like(low[:, 0, 0])], -1)  # [b, p, 2]
    if dim == -1:
        counts = at_least @ weights[:, None]  # [b, h, q, 2]
    else:
        counts = einops.einsum(at_least, weights, "b h q k, b q two -> b h k two")
    hits, n_at_least = counts.unbind(-1)
    straddle = (n_at_least != k_b) & scored
    if bool(straddle.any()):  # a tie straddles the cut: redo those lines exactly
        hits[straddle] = _tie_hits(low, t, items, k, straddle, dim).to(hits.dtype)
    frac = hits / k_b.clamp(min=1)
    return _set_mean(frac, scored, -1)


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
    high = None
    if layout.kind == "literal":  # thresholds come from the small end (see _kth_largest)
        high = pattern.masked_fill(~layout.valid[:, None], torch.inf)
    phrase = 0.5 * (
        _topk_fraction(masked, layout.items, layout.k_rows, layout.c_rows, -1, high)
        + _topk_fraction(masked, layout.items, layout.k_cols, layout.c_cols, -2, high)
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
