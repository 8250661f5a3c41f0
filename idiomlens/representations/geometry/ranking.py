"""Ranking every row of the CPU search's products: the ``depth`` smallest entries of
each row of ``h = |x_j|^2 / 2 - x_i . x_j``, nearest first, equal values in column order.

Both paths bound each row's ``depth``-th value by the ``depth``-th smallest of the minima
of ``>= 4 depth`` column groups (:func:`_row_bounds`), keep the entries at or below it
(about 13% more than ``depth`` for 100 of 5,000) and sort only those
(:func:`_order_survivors`):

- :func:`_rank_native`, with the C kernels of :mod:`idiomlens._native`, reads the products
  where the search left them (the packed triangle's blocks, the part below the diagonal
  in its transposed layout) and takes the minima and the survivors in one pass each;
- :func:`_smallest`, in numpy, ranks rows of ``h`` built beforehand.

They give the same neighbours and values, bit for bit.
"""

from __future__ import annotations

import threading

import numpy as np

from ..._native import PIECE, KNNKernels

__all__: list[str] = []

#: the bound of :func:`_smallest` comes from the minima of groups of at most this many
#: columns, at least ``GROUPS_PER_DEPTH * depth`` groups per row
GROUP_COLUMNS = 16
GROUPS_PER_DEPTH = 4
#: rows with more than this many times ``depth`` entries under their bound (ties) are
#: ranked one by one
WIDE_ROWS = 4


def _group_size(n: int, depth: int) -> int:
    """Columns per group of the bound on rows of ``n`` columns (1: the exact value)."""
    size = min(GROUP_COLUMNS, n // (GROUPS_PER_DEPTH * depth))
    return size if size >= 2 else 1


def _row_bounds(h: np.ndarray, depth: int, work: np.ndarray | None) -> np.ndarray:
    """An upper bound on every row's ``depth``-th smallest value (often the value itself).

    Columns ``j, j + g, j + 2g, ...`` form group ``j``; at least ``depth`` group minima
    are at or below the ``depth``-th smallest of those minima, so at least ``depth``
    entries are. One vectorised ``minimum`` over the row and a partition of the ``g``
    minima replace a partition of the whole row; the bound lets through a few entries
    more (a neighbour sharing a group with a nearer one), about 13% for 100 of 5,000.
    Short rows (fewer than ``2 GROUPS_PER_DEPTH depth`` columns) are partitioned whole,
    in ``work`` (``h``'s shape, overwritten), which gives the value itself.
    """
    r, n = h.shape
    size = _group_size(n, depth)
    if size < 2:
        work = np.empty_like(h) if work is None else work
        np.copyto(work, h)
        work.partition(depth - 1, axis=1)
        return work[:, depth - 1].copy()
    g = n // size
    minima = np.minimum.reduce(h[:, : g * size].reshape(r, size, g), axis=1)
    if g * size < n:  # the last few columns are groups of their own
        minima = np.concatenate([minima, h[:, g * size :]], axis=1)
    minima.partition(depth - 1, axis=1)
    return minima[:, depth - 1].copy()


def _flat_true(mask: np.ndarray) -> np.ndarray:
    """``np.flatnonzero(mask)`` for a sparse C-contiguous bool array, through its packed
    bits: only the nonzero bytes are unpacked (0.29 against 0.47 ms for a 256 x 5,000
    mask with 2% set)."""
    packed = np.packbits(mask, axis=None)
    at = np.flatnonzero(packed != 0)
    bits = np.flatnonzero(np.unpackbits(packed[at]).view(np.bool_))
    return at[bits >> 3] * 8 + (bits & 7)


def _order_survivors(vals: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``depth`` smallest of every row of ``vals`` (each row's entries in column
    order, padded with +inf) and their positions, nearest first, equal values in column
    order: one SIMD sort, and a stable one only for rows with ties among them."""
    order = np.argsort(vals, axis=1)
    head = np.take_along_axis(vals, order[:, : depth + 1], 1)  # one more: ties at depth
    redo = np.flatnonzero((head[:, 1:] == head[:, :-1]).any(1))
    if redo.size:  # equal values: a stable sort keeps them in column order
        order[redo] = np.argsort(vals[redo], axis=1, kind="stable")
        head[redo] = np.take_along_axis(vals[redo], order[redo, : depth + 1], 1)
    return head[:, :depth], order[:, :depth]


def _smallest(
    h: np.ndarray, depth: int, work: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Values and columns of the ``depth`` smallest entries of every row of ``h``,
    nearest first; equal values in column order.

    A bound on each row's ``depth``-th value (:func:`_row_bounds`), one comparison with
    it for the columns (ascending), then only those few values per row are sorted, side
    by side (2.1 ms per 256 x 5,000 block for 100, against 2.9 ms with a partition of the
    whole rows; 3.4 against 5.4 ms at 14,000 columns). Rows with more than
    :data:`WIDE_ROWS` ``* depth`` entries at or below their bound (ties: integer-valued
    rows) are finished one by one.
    """
    r, n = h.shape
    bound = _row_bounds(h, depth, work)
    flat = _flat_true(h <= bound[:, None])  # row-major: each row's columns ascending
    rows = flat // n
    counts = np.bincount(rows, minlength=r)
    values = np.empty((r, depth), dtype=h.dtype)
    cols = np.empty((r, depth), dtype=np.int64)
    wide = counts > WIDE_ROWS * depth
    if wide.any():
        keep = ~wide[rows]
        flat, rows, counts = flat[keep], rows[keep], np.where(wide, 0, counts)
    narrow = np.flatnonzero(~wide)
    if narrow.size:  # the survivors of every row side by side, padded with +inf
        starts = np.cumsum(counts) - counts
        vals = np.full((r, int(counts.max())), np.inf, dtype=h.dtype)
        vals[rows, np.arange(flat.size) - starts[rows]] = h.reshape(-1)[flat]
        if narrow.size < r:
            vals = vals[narrow]
        values[narrow], order = _order_survivors(vals, depth)
        # a row's i-th survivor is flat[starts[row] + i]
        cols[narrow] = flat[starts[narrow, None] + order] - (narrow * n)[:, None]
    for i in np.flatnonzero(wide):
        cand = np.flatnonzero(h[i] <= bound[i])
        first = cand[np.argsort(h[i, cand], kind="stable")[:depth]]
        values[i], cols[i] = h[i, first], first
    return values, cols


def _buffer(local: threading.local, name: str, size: int, dtype: type) -> np.ndarray:
    """A thread's scratch array ``name`` of at least ``size`` entries, kept for its next
    task (fresh blocks per task cost page faults)."""
    buf = getattr(local, name, None)
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype)
        setattr(local, name, buf)
    return buf[:size]


def _rank_native(
    kernels: KNNKernels,
    parts: list[tuple[np.ndarray, int, int]],
    hsq: np.ndarray,
    row0: int,
    r: int,
    depth: int,
    local: threading.local,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_smallest` of the rows ``row0 .. row0 + r`` of ``h = hsq[j] - p[i, j]``
    (their own column left out), from the products ``p`` in pieces ``(array, col0,
    kind)``: kind 0 ``[r, m]`` for columns ``col0 ..``, kind 1 ``[m, r]`` (the
    transposed layout). The C kernels take every row's group minima (the bound of
    :func:`_row_bounds`, over other groups) and then its entries at or below the bound,
    in column order, each in one pass; numpy partitions the minima and sorts the few
    survivors (:func:`_order_survivors`), so the result is the same, bit for bit.
    Per 256 rows of 5,000 x 512 points at depth 100 on one thread: about 1.7 ms against
    2.5 ms for building the rows and :func:`_smallest` (AMD EPYC Zen 4).
    """
    n = len(hsq)
    size = _group_size(n, depth)
    pieces = np.empty(len(parts), PIECE)
    widest = 1
    for i, (p, col0, kind) in enumerate(parts):
        m = p.shape[1 - kind]
        pieces[i] = (p.ctypes.data, p.strides[0] // 4, m, col0, kind)
        if kind == 1:
            widest = max(widest, -(-m // size))
    m_all, kinds = pieces["m"], pieces["kind"]
    groups = np.where(kinds == 0, np.where(m_all >= size, m_all // size, m_all), -(-m_all // size))
    mins = _buffer(local, "mins", r * int(groups.sum()), np.float32).reshape(r, -1)
    scratch = _buffer(local, "mins_t", widest * r, np.float32)
    kernels.group_minima(pieces, hsq, row0, r, size, mins, scratch)
    mins.partition(depth - 1, axis=1)
    bound = mins[:, depth - 1].copy()
    cap = WIDE_ROWS * depth
    vals = _buffer(local, "vals", r * cap, np.float32).reshape(r, cap)
    vals.fill(np.inf)
    cols = _buffer(local, "cols", r * cap, np.int64).reshape(r, cap)
    counts = np.empty(r, np.int64)
    kernels.collect(pieces, hsq, row0, 0, r, bound, vals, cols, counts)
    values = np.empty((r, depth), dtype=np.float32)
    out_cols = np.empty((r, depth), dtype=np.int64)
    wide = counts > cap
    narrow = np.flatnonzero(~wide)
    if narrow.size:
        m = int(counts[narrow].max())
        v, c = (
            (vals[:, :m], cols[:, :m]) if narrow.size == r else (vals[narrow, :m], cols[narrow, :m])
        )
        values[narrow], order = _order_survivors(v, depth)
        out_cols[narrow] = np.take_along_axis(c, order, 1)
    for t in np.flatnonzero(wide).tolist():  # ties: all of the row's entries under its bound
        c_all = int(counts[t])
        v1, c1 = np.empty((1, c_all), np.float32), np.empty((1, c_all), np.int64)
        kernels.collect(pieces, hsq, row0, t, t + 1, bound, v1, c1, np.empty(1, np.int64))  # fmt: skip
        first = np.argsort(v1[0], kind="stable")[:depth]
        values[t], out_cols[t] = v1[0, first], c1[0, first]
    return values, out_cols
