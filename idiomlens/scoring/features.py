"""Pure, batched idiom and literal head features (METHODS.md, "Idiom score", "Literal score").

Every function here is tensor-in/tensor-out on one layer's stacked attention patterns
``A: [batch, head_index, query_pos, key_pos]`` in *padded* coordinates, together with a
:class:`ScoringLayout` of per-example position masks built once per batch. There is no
Python loop over examples, heads, rows or columns:

- ``mean`` / ``neg_std``: masked reductions over the scored ``(q, k)`` pairs;
- ``max`` and ``phrase`` read only the rows and columns METHODS.md scores, gathered
  once per layer into flat ``[line, head, pos]`` blocks (:class:`LineSet`);
- ``max``: one argmax per line (ties -> smaller index), then a mode found by counting
  winners with ``index_add`` (ties -> smaller value);
- ``phrase``: the ``K``-th largest value ``t`` of every line from one small ``topk``
  (``K <= n`` for the idiom score; for the literal score the ``K``-th largest is the
  ``(C - K + 1)``-th smallest of ``C`` candidates, again a small ``topk``); the top-``K``
  set is then ``{A > t}`` plus the smallest-index candidates equal to ``t`` (a ``cumsum``
  over ties, only when a tie straddles the cut). Lines with at most one non-item
  candidate need no ``topk`` at all;
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
    "LineSet",
    "ScoringLayout",
    "attention_features",
    "contribution_feature",
    "head_output_share",
    "item_mean",
    "output_gram",
    "head_features",
]

#: Feature order along the last axis of every feature tensor.
FEATURE_NAMES: tuple[str, ...] = ("mean", "neg_std", "max", "phrase", "contribution")
#: Which item set a score is about: the idiom span ``I`` or the literal set ``L``.
KINDS: tuple[str, ...] = ("idiom", "literal")


@dataclass(frozen=True)
class LineSet:
    """The rows (or columns) that ``max`` and ``phrase`` read, flattened across a batch.

    Only these lines are gathered, so unscored rows and columns (before the idiom for
    rows, after it for columns, BOS, padding) cost nothing. Each line's candidates lie
    along its last axis: keys for a row, queries for a column.

    ``K`` always counts a line's item candidates, so a line's top-``K`` depends only on
    its ``N = C - K`` other candidates, and lines come in three groups, in this order:

    - ``n_ranked`` lines with ``K > 0`` and ``N >= 2``: a top-``K`` selection;
    - ``n_single`` lines with ``K > 0`` and ``N = 1`` (for the literal score, the rows
      before the idiom, whose other candidate is BOS; for the idiom score, the idiom's
      columns when one token, such as a full stop, follows it): the top-``K`` drops
      exactly the worst candidate, so only whether the non-item ``odd`` is the worst
      matters;
    - the rest: ``K = 0`` (in ``max`` only) or ``N = 0`` (the top-``K`` is every
      candidate, all items: fraction 1).

    Attributes:
        b, p: ``[line]`` example and position (row ``q`` or column ``k``) of each line.
        cand: ``[line, pos]`` the line's candidates (``valid`` along it).
        k: ``[line]`` ``K`` for ``phrase`` (0: the line is not in ``phrase``).
        c: ``[line]`` number of candidates.
        in_max: ``[line]`` whether the line's argmax enters the ``max`` mode.
        n_max, n_phrase: ``[batch]`` per-example counts of such lines.
        n_ranked, n_single: sizes of the first two groups.
        odd: ``[n_single]`` position of the one non-item candidate of each single line.
    """

    b: Int[Tensor, " line"]
    p: Int[Tensor, " line"]
    cand: Bool[Tensor, "line pos"]
    k: Int[Tensor, " line"]
    c: Int[Tensor, " line"]
    in_max: Bool[Tensor, " line"]
    n_max: Int[Tensor, " batch"]
    n_phrase: Int[Tensor, " batch"]
    n_ranked: int
    n_single: int
    odd: Int[Tensor, " single"]

    @classmethod
    def select(cls, cand: Tensor, k: Tensor, in_max: Tensor, items: Tensor) -> LineSet:
        """Lines with ``K > 0`` or in ``max``, grouped as above.

        ``cand [b, line_pos, pos]``; ``k``, ``in_max [b, line_pos]``; ``items [b, pos]``.
        """
        b, p = ((k > 0) | in_max).nonzero(as_tuple=True)
        line_k, line_c = k[b, p], cand[b, p].sum(-1)
        n_other = line_c - line_k
        group = torch.where(line_k > 0, torch.where(n_other >= 2, 0, n_other.neg() + 2), 2)
        order = torch.argsort(group, stable=True)  # group 0: N >= 2, 1: N = 1, 2: rest
        b, p, group = b[order], p[order], group[order]
        line_cand = cand[b, p]
        n_ranked, n_single = int((group == 0).sum()), int((group == 1).sum())
        single = slice(n_ranked, n_ranked + n_single)
        odd = (line_cand[single] & ~items[b[single]]).to(torch.uint8).argmax(-1)
        return cls(
            b,
            p,
            line_cand,
            line_k[order],
            line_c[order],
            in_max[b, p],
            in_max.sum(-1),
            (k > 0).sum(-1),
            n_ranked,
            n_single,
            odd,
        )

    def gather(self, pattern: Tensor, axis: str) -> Tensor:
        """``[line, head_index, pos]``: each line of ``pattern``, ``-inf`` off its candidates."""
        lines = pattern[self.b, :, self.p] if axis == "row" else pattern[self.b, :, :, self.p]
        return lines.masked_fill(~self.cand[:, None], -torch.inf)


@dataclass(frozen=True)
class ScoringLayout:
    """Per-example position masks for one padded batch and one ``kind``.

    Attributes:
        pairs: ``[batch, query_pos, key_pos]`` cells averaged by ``mean`` / ``neg_std``.
        items: ``[batch, pos]`` the item set (``I`` or ``L``).
        rows, cols: the rows / columns read by ``max`` and ``phrase``
            (:class:`LineSet`; candidates are the real causal cells ``k <= q``, BOS
            included).
        kind: ``"idiom"`` or ``"literal"``.
    """

    pairs: Bool[Tensor, "batch query_pos key_pos"]
    items: Bool[Tensor, "batch pos"]
    rows: LineSet
    cols: LineSet
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
            items = batch.idiom_mask()
            pairs = valid & scored[:, None, :] & (items[:, :, None] | items[:, None, :])
            max_rows = real & (pos >= s)  # q = s .. T-1
            max_cols = scored & (pos <= e)  # k = p0 .. e
            n = e - s + 1
            k_rows = torch.where(max_rows, torch.minimum(pos - s + 1, n), 0)
            k_cols = torch.where(max_cols, torch.where(pos >= s, e - pos + 1, n), 0)
        else:
            items = max_rows = max_cols = batch.literal_mask()
            pairs = valid & items[:, :, None] & items[:, None, :]
            n_before = items.long().cumsum(-1)  # |{k in L : k <= q}|
            n_after = items.long().flip(-1).cumsum(-1).flip(-1)  # |{q in L : q >= c}|
            k_rows = torch.where(scored, n_before, 0)
            k_cols = torch.where(scored, n_after, 0)
        rows = LineSet.select(valid, k_rows, max_rows, items)
        cols = LineSet.select(valid.transpose(1, 2), k_cols, max_cols, items)
        return cls(pairs, items, rows, cols, kind)


def _set_mean(values: Tensor, counted: Tensor, dim: int) -> Tensor:
    """Mean of ``values`` where ``counted`` along ``dim``; an empty set gives 0."""
    total = torch.where(counted, values, 0.0).sum(dim)
    return total / counted.sum(dim).clamp(min=1)


def _per_example_mean(values: Tensor, ls: LineSet, weight: Tensor, count: Tensor) -> Tensor:
    """``[batch, head]`` sum over each example's lines of ``values [line, head]`` where
    ``weight [line]``, divided by ``count [batch]`` (an empty set gives 0).

    Lines are unique per ``(example, position)``, so they are scattered into a dense
    ``[batch, head, pos]`` block and summed along ``pos``: the same additions in the same
    order on every device and for any number of heads (an ``index_add`` would use float
    atomics on CUDA).
    """
    dense = values.new_zeros(count.shape[0], values.shape[1], ls.cand.shape[-1])
    dense[ls.b, :, ls.p] = torch.where(weight[:, None], values, 0.0)
    return dense.sum(-1) / count[:, None].clamp(min=1)


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


def _mode_fraction(lines: Tensor, ls: LineSet, items: Tensor) -> Tensor:
    """``count(m) / n_max`` if the mode ``m`` of the ``in_max`` lines' argmaxes is an item,
    else 0, per example and head (``[b, h]``).

    Argmax takes the first maximum (smaller index); counting winners with ``index_add``
    and taking the first maximum count gives the smaller value on a tie between modes.
    """
    n_batch, n_pos = items.shape
    n_heads = lines.shape[1]
    winners = lines.argmax(-1)  # [line, h]
    heads = torch.arange(n_heads, device=lines.device)
    slot = (ls.b[:, None] * n_heads + heads) * n_pos + winners
    counts = lines.new_zeros(n_batch * n_heads * n_pos)
    counts.index_add_(0, slot.flatten(), ls.in_max[:, None].expand_as(winners).flatten().float())
    top, mode = counts.view(n_batch, n_heads, n_pos).max(-1)
    return top * items.gather(1, mode) / ls.n_max[:, None].clamp(min=1)


def _kth_largest(lines: Tensor, k: Tensor, c: Tensor) -> Tensor:
    """The ``K``-th largest candidate value of each line ``[line, h, :]``, as ``[line, h, 1]``.

    ``lines`` holds candidates and ``-inf`` elsewhere; ``k`` / ``c`` ``[line]`` are ``K``
    and the number of candidates. The ``K``-th largest is the ``(C - K + 1)``-th smallest,
    so one small ``topk`` suffices whichever of ``K`` and ``C - K + 1`` is small (idiom:
    ``K <= n``; literal: ``C - K + 1 <= n + 2``). Values only: ties do not matter here.
    """
    k_large = int(k.max())
    k_small = int(torch.where(k > 0, c - k + 1, 0).max())
    if k_large <= k_small:
        vals, index = (
            lines.topk(k_large, dim=-1).values,
            k - 1,
        )
    else:
        high = lines.nan_to_num(neginf=torch.inf)  # non-candidates last (one fused pass)
        vals, index = (
            high.topk(k_small, dim=-1, largest=False).values,
            c - k,
        )
    index = index.clamp(0, vals.shape[-1] - 1)[:, None, None]  # [line, 1, 1]
    return vals.gather(-1, index.expand(*vals.shape[:-1], 1))


def _tie_hits(lines: Tensor, t: Tensor, items: Tensor, k: Tensor, todo: Tensor) -> Tensor:
    """Exact top-``K`` item counts for the ``todo`` lines (``[line, h]`` mask) whose
    ``K``-th value is tied: all candidates above ``t``, then ties by increasing index."""
    i, h = todo.nonzero(as_tuple=True)
    vals, thr = lines[i, h], t[i, h]  # [m, pos], [m, 1]
    above = vals > thr
    need = k[i][:, None] - above.sum(-1, keepdim=True)
    tie = vals == thr
    chosen = above | (tie & (tie.cumsum(-1) <= need))
    return (chosen & items[i]).sum(-1)


def _single_hits(lines: Tensor, ls: LineSet) -> Tensor:
    """Top-``K`` item counts ``[n_single, h]`` of the lines with one non-item candidate.

    The top-``K`` is every candidate but the worst (smallest value; on ties the larger
    index is worse), so it holds ``K`` items unless the worst is an item, then ``K - 1``.
    The non-item ``j`` is not the worst iff some candidate is worse than it.
    """
    single = slice(ls.n_ranked, ls.n_ranked + ls.n_single)
    j = ls.odd[:, None, None]  # [m, 1, 1]
    value = lines.gather(-1, j.expand(-1, lines.shape[1], 1))  # [m, h, 1]
    after = torch.arange(lines.shape[-1], device=lines.device) > j  # [m, 1, pos]
    worse = torch.where(after, lines <= value, lines < value) & ls.cand[single, None]
    return ls.k[single, None] - worse.any(-1).to(lines.dtype)


def _topk_fraction(lines: Tensor, ls: LineSet, items: Tensor) -> Tensor:
    """Mean over each example's scored lines of the fraction of their top-``K``
    candidates that are items (``[b, h]``).

    A line with ``K > 0`` takes its top-``K`` candidates (value descending, smaller index
    first on ties). Every candidate strictly above the ``K``-th largest value ``t`` is in
    the top-``K``; of the candidates equal to ``t``, the ones with the smallest indices
    fill the rest (handled exactly, and only for the lines where such a tie straddles the
    cut). Lines with one or no non-item candidate need no top-K (see :class:`LineSet`).
    """
    fraction = (ls.k > 0).to(lines.dtype)[:, None].expand(-1, lines.shape[1]).clone()
    m, m1 = ls.n_ranked, ls.n_single
    if m:
        ranked, k = lines[:m], ls.k[:m]
        t = _kth_largest(ranked, k, ls.c[:m])
        line_items = items[ls.b[:m]]  # [m, pos]
        at_least = (ranked >= t).to(lines.dtype)
        # one batched matmul counts, per line, the members and all candidates >= t
        weights = torch.stack([line_items, torch.ones_like(line_items)], -1).to(lines.dtype)
        hits, n_at_least = torch.bmm(at_least, weights).unbind(-1)  # [m, h] each
        straddle = n_at_least != k[:, None]
        if bool(straddle.any()):
            hits[straddle] = _tie_hits(ranked, t, line_items, k, straddle).to(hits.dtype)
        fraction[:m] = hits / k[:, None]
    if m1:
        fraction[m : m + m1] = _single_hits(lines[m : m + m1], ls) / ls.k[m : m + m1, None]
    return _per_example_mean(fraction, ls, ls.k > 0, ls.n_phrase)


def attention_features(
    pattern: Float[Tensor, "batch head_index query_pos key_pos"], layout: ScoringLayout
) -> Float[Tensor, "batch head_index 4"]:
    """The pattern features ``mean, neg_std, max, phrase`` of every head (float32).

    ``pattern`` is one layer's ``hook_pattern`` on a padded batch; ``layout`` says which
    cells, rows and columns each feature reads (see :class:`ScoringLayout`).
    """
    pattern = pattern.float()
    mean, neg_std = _mean_neg_std(pattern, layout.pairs)
    rows = layout.rows.gather(pattern, "row")  # [line, h, key]
    cols = layout.cols.gather(pattern, "col")  # [line, h, query]
    max_feat = 0.5 * (
        _mode_fraction(rows, layout.rows, layout.items)
        + _mode_fraction(cols, layout.cols, layout.items)
    )
    phrase = 0.5 * (
        _topk_fraction(rows, layout.rows, layout.items)
        + _topk_fraction(cols, layout.cols, layout.items)
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


def item_mean(
    share: Float[Tensor, "batch pos head_index"], layout: ScoringLayout
) -> Float[Tensor, "batch head_index"]:
    """Mean of ``share`` over each example's item positions (empty set -> 0)."""
    return _set_mean(share, layout.items[:, :, None], 1)


def contribution_feature(
    z: Float[Tensor, "batch pos head_index d_head"],
    gram: Float[Tensor, "head_index d_head d_head"],
    layout: ScoringLayout,
) -> Float[Tensor, "batch head_index"]:
    """Mean over the item positions of each head's output share (empty set -> 0)."""
    return item_mean(head_output_share(z, gram), layout)


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
