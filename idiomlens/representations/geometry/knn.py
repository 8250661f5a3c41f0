"""The one neighbour graph per layer that every geometry metric reads.

:func:`unique_rows` drops exact duplicate rows (keeping the first), and :func:`knn_graph`
finds, for every point, its nearest neighbours in Euclidean distance, the point itself
never among them. The search is a float32 matmul (``|x|^2 + |y|^2 - 2 x.y`` on
mean-centred data, so the cancellation error is relative to the spread of the data, not
to its offset from the origin) followed by a per-row selection:

- on the CPU (:func:`_search_cpu`), numpy's BLAS or, on Intel, MKL (see
  :func:`idiomlens._blas.matmul_into`), then a per-row selection under a bound from
  group minima (:mod:`.ranking`: C kernels compiled at first use read the products where
  they lie, or numpy builds the rows, with the same results), on
  ``torch.get_num_threads()`` Python threads (:func:`~idiomlens._blas.pool_threads`);
  when the upper triangle of the ``[N, N]`` matrix fits (:data:`SYMMETRIC_BYTES`) only
  it is multiplied, and held packed;
- elsewhere (:func:`_search_torch`, the GPU), blocks of rows and one ``topk`` each.

The distances at the ranks asked for, up to :data:`EXACT_RANKS`, are recomputed exactly
in float64 from the coordinates (to the neighbour the search put at that rank), block by
block, so ratios such as ``r2 / r1`` are float64 ratios of exact distances. Farther ranks
(GRIDE's large scales) are read from a values-only sort of each row and keep the
float32 search's precision — relative error about ``1e-7 |x|^2 / r^2`` on mean-centred
data, smallest exactly where ``r`` is large.

Cost: ``N^2 D`` multiply-adds for the search (half that on the CPU while the triangle
fits, :data:`SYMMETRIC_BYTES`), a selection per row, a sort per row only when ranks
beyond :data:`EXACT_RANKS` are asked for, ``N D`` per exact rank. Memory: the packed
float32 upper triangle (about ``2 N^2`` bytes) or one ``[block, N]`` block at a time
(:data:`BLOCK_BYTES`; a :class:`Workspace` keeps it for the next call), plus the graph
itself (``N x k`` int64 indices, ``N x len(ranks)`` float64 distances).

>>> import torch
>>> x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
>>> g = knn_graph(x, k=2, ranks=(1, 3))
>>> g.indices.tolist()
[[1, 2], [0, 2], [1, 0], [2, 1]]
>>> g.distance(3).tolist()
[7.0, 6.0, 4.0, 7.0]
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..._blas import blas_threads, map_on_threads, matmul_into, pool_threads
from ..._native import knn_kernels
from .ranking import _buffer, _rank_native, _smallest

__all__ = [
    "KNNGraph",
    "Workspace",
    "spare_workspace",
    "drop_spare_workspace",
    "knn_graph",
    "exact_distances",
    "unique_rows",
    "resolve_device",
    "EXACT_RANKS",
]

#: ranks up to this one get exact float64 distances (farther ones: float32 precision)
EXACT_RANKS = 32
#: bytes of float32 distances per block (per-row ranking scratch comes on top)
BLOCK_BYTES = {"cpu": 128 * 2**20, "cuda": 1024 * 2**20}
#: the CPU search keeps the packed upper triangle of the ``[N, N]`` float32 matrix (and
#: multiplies only it) up to this size, beyond ``BLOCK_BYTES["cpu"]`` only in a quarter of
#: the free memory: 0.2 GB for N = 10,000, 0.4 GB for the geometry paper's 14,000
#: prompts, 2 GiB at N = 32,600
SYMMETRIC_BYTES = 2 * 2**30


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> the GPU when one is present, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(frozen=True)
class KNNGraph:
    """Nearest neighbours of every point of one layer (self excluded), nearest first.

    Attributes:
        indices: ``[point, k]`` neighbour indices, ordered by the float32 search.
        ranks: the neighbour ranks (1 = nearest) whose distances are kept, ascending.
        rank_distances: ``[point, len(ranks)]`` float64 Euclidean distances at ``ranks``
            (non-decreasing along a row; exact up to rank :data:`EXACT_RANKS`).
    """

    indices: Int[Tensor, "point k"]
    ranks: tuple[int, ...]
    rank_distances: Float[Tensor, "point rank"]

    @property
    def n_points(self) -> int:
        """Number of points ``N``."""
        return int(self.indices.shape[0])

    @property
    def k(self) -> int:
        """Number of neighbours held per point."""
        return int(self.indices.shape[1])

    def distance(self, rank: int) -> Float[Tensor, " point"]:
        """The float64 distance of every point to its ``rank``-th neighbour."""
        if rank not in self.ranks:
            raise KeyError(f"the graph holds distances at ranks {self.ranks}, not at {rank}")
        return self.rank_distances[:, self.ranks.index(rank)]


def unique_rows(x: Float[Tensor, "row d"]) -> Int[Tensor, " kept"]:
    """Indices of the first occurrence of every distinct row of ``x``, ascending.

    Rows equal as numbers are duplicates (``-0.0`` equals ``0.0``). On the CPU only rows
    sharing their first coordinate with another row are compared whole (none, for most
    real-valued data: 0.1 ms instead of ``torch.unique``'s 10 ms for 5000 x 512).

    >>> unique_rows(torch.tensor([[1.0, 2.0], [0.0, 0.0], [1.0, 2.0], [3.0, 0.0]])).tolist()
    [0, 1, 3]
    """
    n = x.shape[0]
    if x.device.type != "cpu" or n == 0 or x.shape[1] == 0:
        _, inverse = torch.unique(x, dim=0, return_inverse=True)
        first = torch.full((int(inverse.max()) + 1,), n, dtype=torch.long, device=x.device)
        first.scatter_reduce_(0, inverse, torch.arange(n, device=x.device), reduce="amin")
        return first.sort().values
    a = x.detach()
    a = (a if a.dtype in (torch.float32, torch.float64) else a.float()).numpy()
    lead = a[:, 0]
    order = np.argsort(lead, kind="stable")
    same = lead[order[1:]] == lead[order[:-1]]
    if not same.any():
        return torch.arange(n)
    shared = np.zeros(n, dtype=bool)
    shared[order[1:][same]] = shared[order[:-1][same]] = True
    candidates = np.flatnonzero(shared)  # ascending
    rows = np.ascontiguousarray(a[candidates] + 0.0)  # + 0.0 turns -0.0 into 0.0
    _, first = np.unique(rows.view(np.dtype((np.void, rows.strides[0]))).ravel(), return_index=True)
    dropped = np.setdiff1d(candidates, candidates[first])
    return torch.from_numpy(np.setdiff1d(np.arange(n), dropped))


def _triangle_size(n: int) -> int:
    """Float32 entries of the packed upper triangle: row block ``s`` (:data:`TASK_ROWS`
    rows) keeps columns ``s..N``."""
    return sum(min(TASK_ROWS, n - s) * (n - s) for s in range(0, n, TASK_ROWS))


def _symmetric(n: int) -> bool:
    """Whether the CPU search holds the packed upper triangle of the ``[n, n]`` matrix
    (see :data:`SYMMETRIC_BYTES`)."""
    need = 4 * _triangle_size(n)
    if need > SYMMETRIC_BYTES:
        return False
    if need <= BLOCK_BYTES["cpu"]:
        return True
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not a POSIX system that says
        return False
    return need <= free // 4


def _block_rows(n: int, device: torch.device) -> int:
    budget = BLOCK_BYTES.get(device.type, BLOCK_BYTES["cuda"])
    return max(1, min(n, budget // (4 * n)))


class Workspace:
    """Scratch memory that successive :func:`knn_graph` calls reuse.

    A fresh ``[5000, 5000]`` float32 block costs page faults on first touch, so a loop
    over layers hands every search the same block, and successive calls borrow the same
    one (:func:`spare_workspace`). On the CPU the block is numpy's, which asks Linux for
    transparent huge pages on large arrays: the first packed triangle of 5,000 x 512
    points into it took 151 ms, against 171 ms into a fresh ``torch.empty`` (AMD EPYC,
    one thread; 148 ms into touched memory). Holds at most one block
    (:data:`BLOCK_BYTES`) until garbage-collected.
    """

    def __init__(self) -> None:
        self._buffer: Tensor | None = None

    def take(self, rows: int, cols: int, device: torch.device) -> Tensor:
        """A contiguous ``[rows, cols]`` float32 tensor on ``device`` (contents undefined)."""
        buf = self._buffer
        if buf is None or buf.numel() < rows * cols or buf.device != device:
            self._buffer = buf = None  # the old block goes before the new one comes
            if device.type == "cpu":
                buf = torch.from_numpy(np.empty(rows * cols, dtype=np.float32))
            else:
                buf = torch.empty(rows * cols, dtype=torch.float32, device=device)
            self._buffer = buf
        return buf[: rows * cols].view(rows, cols)

    @property
    def nbytes(self) -> int:
        """Bytes held (0 before the first :meth:`take`)."""
        return 0 if self._buffer is None else self._buffer.numel() * 4

    @property
    def device(self) -> torch.device | None:
        """Where the block is (``None`` before the first :meth:`take`)."""
        return None if self._buffer is None else self._buffer.device


#: a CPU block of at most this many bytes is kept between calls by :func:`spare_workspace`
#: (the packed triangle of up to 11,450 points; 0: none is kept)
SPARE_WORKSPACE_BYTES = 256 * 2**20
_SPARE: list[Workspace] = []
_SPARE_LOCK = threading.Lock()


@contextmanager
def spare_workspace() -> Iterator[Workspace]:
    """The process's spare :class:`Workspace` for the duration of a run (a new one while
    another run holds it), kept afterwards if its block is on the CPU and at most
    :data:`SPARE_WORKSPACE_BYTES`: the first search of every geometry call otherwise
    pays the page faults of a fresh block (about 20 ms of the 5,000 x 512 triangle's
    80 ms at two threads). :func:`drop_spare_workspace` frees it.
    """
    with _SPARE_LOCK:
        workspace = _SPARE.pop() if _SPARE else Workspace()
    try:
        yield workspace
    finally:
        keep = workspace.device is None or (
            workspace.device.type == "cpu" and workspace.nbytes <= SPARE_WORKSPACE_BYTES
        )
        with _SPARE_LOCK:
            if keep and not _SPARE:
                _SPARE.append(workspace)


def drop_spare_workspace() -> None:
    """Free the block :func:`spare_workspace` keeps between calls."""
    with _SPARE_LOCK:
        _SPARE.clear()


Search = tuple[Tensor, Tensor, Tensor, Tensor]
"""h values ``[N, depth]``, indices ``[N, depth]``, far h ``[N, far]``, exact ``[N, near]``."""


def _rank_block(h: Tensor, depth: int) -> tuple[Tensor, Tensor]:
    """Values and indices of the ``depth`` smallest entries of every row, nearest first."""
    if depth > 512 and 8 * depth > h.shape[1]:  # deep lists: one sort beats a deep topk
        idx = h.argsort(dim=1)[:, :depth]
        return h.gather(1, idx), idx
    values, idx = h.topk(depth, dim=1, largest=False, sorted=True)
    return values, idx


def _search_torch(
    x: Tensor,
    x32: Tensor,
    half_sq: Tensor,
    depth: int,
    far: list[int],
    near: list[int],
    scratch: Tensor,
) -> Search:
    """The search in torch, ``scratch.shape[0]`` rows at a time (the GPU path).

    ``h = |x_j|^2 / 2 - x_i.x_j`` ranks row ``i`` as ``d2 = 2 h + |x_i|^2`` does.
    """
    n, dev = x32.shape[0], x32.device
    block = scratch.shape[0]
    values = torch.empty(n, depth, dtype=torch.float32, device=dev)
    indices = torch.empty(n, depth, dtype=torch.long, device=dev)
    far_h = torch.empty(n, len(far), dtype=torch.float32, device=dev)
    exact = torch.empty(n, len(near), dtype=torch.float64, device=dev)
    for s in range(0, n, block):
        e = min(n, s + block)
        h = torch.matmul(x32[s:e], x32.T, out=scratch[: e - s]).neg_().add_(half_sq[None, :])
        h[torch.arange(e - s, device=dev), torch.arange(s, e, device=dev)] = math.inf
        values[s:e], indices[s:e] = _rank_block(h, depth)
        if far:
            far_h[s:e] = h.sort(dim=1).values[:, [r - 1 for r in far]]
        exact[s:e] = exact_distances(x, indices[s:e, near], start=s)
    return values, indices, far_h, exact


#: rows per task of the CPU search (and per block of its packed triangle, whose
#: transposed reads go a block at a time: 2x one strided copy)
TASK_ROWS = 256


def _search_cpu(
    x: Tensor,
    x32: Tensor,
    half_sq: Tensor,
    depth: int,
    far: list[int],
    near: list[int],
    workspace: Workspace,
) -> Search:
    """The search on :func:`~idiomlens._blas.pool_threads` Python threads.

    Each task takes :data:`TASK_ROWS` rows. When the packed upper triangle fits
    (:data:`SYMMETRIC_BYTES`), tasks first compute only it with one-thread BLAS products
    (row block ``i`` times rows ``i..N``, each block's own array: half the
    multiply-adds); otherwise each task multiplies its rows by all. Then each task ranks
    its rows: with the C kernels (:func:`~idiomlens._native.knn_kernels`) straight from
    the (now read-only) triangle, the part below the diagonal read in its transposed
    layout (:func:`~.ranking._rank_native`); without them, or when ranks beyond
    ``depth`` need whole sorted rows, by building its rows of ``h`` (transposing that
    part) for :func:`~.ranking._smallest`. A last pass computes the exact distances, the
    points still in cache. C, numpy and torch release the GIL. One BLAS thread per task
    avoids the busy-waiting of OpenBLAS's, torch's and our threads on the same cores (at
    two threads the pooled version ran its selection 2-5x slower than alone).
    """
    n = x32.shape[0]
    xs, hsq = x32.numpy(), half_sq.numpy()
    xe = (x if x.dtype in (torch.float32, torch.float64) else x.float()).numpy()  # uncentred
    xe = np.ascontiguousarray(xe)
    kernels = knn_kernels()
    native_rank = kernels is not None and not far  # far ranks: rows built for their sort
    symmetric = _symmetric(n)
    rows = TASK_ROWS if symmetric else max(1, min(TASK_ROWS, BLOCK_BYTES["cpu"] // (4 * n)))
    starts = list(range(0, n, rows))
    upper_rows: dict[int, np.ndarray] = {}  # s -> [rows, N - s]: row block s, columns s..N
    if symmetric:
        flat, at = workspace.take(1, _triangle_size(n), x32.device).numpy()[0], 0
        for s in starts:
            shape = (min(rows, n - s), n - s)
            upper_rows[s] = flat[at : at + shape[0] * shape[1]].reshape(shape)
            at += shape[0] * shape[1]
    local = threading.local()  # each thread's scratch
    values = np.empty((n, depth), dtype=np.float32)
    indices = np.empty((n, depth), dtype=np.int64)
    far_h = np.empty((n, len(far)), dtype=np.float32)
    exact = np.empty((n, len(near)), dtype=np.float64)
    far_cols = [r - 1 for r in far]

    def upper(s: int) -> None:
        e = min(n, s + rows)
        matmul_into(xs[s:e], xs[s:].T, upper_rows[s])

    def rank(s: int) -> None:
        e = min(n, s + rows)
        if native_rank:
            if upper_rows:  # earlier blocks' columns s..e (transposed layout), then its own
                parts = [(upper_rows[c][:, s - c : e - c], c, 1) for c in range(0, s, rows)]
                parts.append((upper_rows[s], s, 0))
            else:
                p = _buffer(local, "p", (e - s) * n, np.float32).reshape(e - s, n)
                matmul_into(xs[s:e], xs.T, p)
                parts = [(p, 0, 0)]
            values[s:e], indices[s:e] = _rank_native(kernels, parts, hsq, s, e - s, depth, local)
            return
        if not hasattr(local, "block"):  # this thread's rows of h, and its partition's
            local.block, local.work = np.empty((2, rows, n), np.float32)
        h, work = local.block[: e - s], local.work[: e - s]
        if upper_rows:  # the triangle is read, never written, from here on
            for c in range(0, s, rows):  # below the diagonal: earlier row blocks, transposed
                np.subtract(hsq[c : c + rows], upper_rows[c][:, s - c : e - c].T, out=h[:, c : c + rows])  # fmt: skip
            np.subtract(hsq[s:], upper_rows[s], out=h[:, s:])
        else:
            matmul_into(xs[s:e], xs.T, h)
            np.subtract(hsq, h, out=h)
        h[np.arange(e - s), np.arange(s, e)] = np.inf
        values[s:e], indices[s:e] = _smallest(h, depth, work)
        if far:  # numpy's SIMD sort is several times torch's on the CPU
            far_h[s:e] = np.sort(h, axis=1)[:, far_cols]

    def distances(s: int) -> None:
        e = min(n, s + rows)
        cols = indices[s:e][:, near]
        if kernels is not None:
            exact[s:e] = kernels.exact(xe, cols, s)
            return
        if not hasattr(local, "exact"):
            local.exact = _exact_buffers(len(near), xe)
        exact[s:e] = _exact_cpu(xe, cols, s, local.exact)

    threads = pool_threads()
    with blas_threads(1):
        if symmetric:
            map_on_threads(upper, starts, threads)
        map_on_threads(rank, starts, threads)
        if near:  # after the ranking, so that the points are still in cache
            map_on_threads(distances, starts, threads)
    out = (values, indices, far_h, exact)
    return tuple(torch.from_numpy(a) for a in out)  # type: ignore[return-value]


#: bytes of float64 differences :func:`_exact_cpu` forms at a time (a slab that stays in L2)
EXACT_SLAB_BYTES = 2 * 2**20


def _exact_buffers(k: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scratch for :func:`_exact_cpu` with ``k`` ranks: the gathered rows (``x``'s dtype)
    and their float64 differences, one slab of rows."""
    step = max(1, EXACT_SLAB_BYTES // max(1, 8 * k * x.shape[1]))
    return np.empty((step, k, x.shape[1]), x.dtype), np.empty((step, k, x.shape[1]), np.float64)


def _exact_cpu(
    x: np.ndarray,
    cols: np.ndarray,
    start: int,
    buffers: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """:func:`exact_distances` in numpy, for one task of the CPU search: float64
    differences of the gathered rows, squared and summed by a stacked matmul (about 2x
    an ``einsum`` and 3x torch's single-threaded gather + norm for these shapes), a
    cache-sized slab of rows at a time, into ``buffers`` (:func:`_exact_buffers`; a
    task reuses its thread's). Fresh slabs per call cost page faults: 66-80 against
    19 ms for 5,000 x 6 ranks of 512 dims in 256-row calls (AMD EPYC Zen 4)."""
    out = np.empty(cols.shape, dtype=np.float64)
    if buffers is None or buffers[0].shape[1:] != cols.shape[1:] + x.shape[1:] or buffers[0].dtype != x.dtype:  # fmt: skip
        buffers = _exact_buffers(cols.shape[1], x)
    rows, diff = buffers
    step = rows.shape[0]
    for s in range(0, cols.shape[0], step):
        e = min(cols.shape[0], s + step)
        got, d = rows[: e - s], diff[: e - s]
        np.take(x, cols[s:e], axis=0, out=got)
        np.subtract(got, x[start + s : start + e, None, :], out=d, dtype=np.float64)
        out[s:e] = np.matmul(d[:, :, None, :], d[:, :, :, None])[:, :, 0, 0]
    return np.sqrt(out, out=out)


def exact_distances(x: Tensor, cols: Tensor, start: int = 0) -> Tensor:
    """``|x[start + i] - x[cols[i, c]]|`` in float64, a few rows at a time.

    The coordinates are not centred: a difference of two float32 (or float64) values is
    as exact in float64 as a difference of centred ones, and gathering ``x`` in its own
    dtype moves half the bytes of a float64 copy.

    >>> x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    >>> exact_distances(x, torch.tensor([[1, 2], [0, 2], [1, 0]])).tolist()
    [[5.0, 10.0], [5.0, 5.0], [5.0, 10.0]]
    """
    if cols.numel() and (int(cols.min()) < 0 or int(cols.max()) >= x.shape[0]):
        raise IndexError(f"neighbour indices must lie in [0, {x.shape[0]}); got {int(cols.min())}..{int(cols.max())}")  # fmt: skip
    if start < 0 or start + cols.shape[0] > x.shape[0]:
        raise IndexError(f"rows {start}..{start + cols.shape[0]} are not all among {x.shape[0]} points")  # fmt: skip
    if x.device.type == "cpu":
        xe = np.ascontiguousarray((x if x.dtype in (torch.float32, torch.float64) else x.float()).numpy())  # fmt: skip
        c = np.ascontiguousarray(cols.numpy(), dtype=np.int64)
        kernels = knn_kernels()
        if kernels is not None:
            return torch.from_numpy(kernels.exact(xe, c, start))
        return torch.from_numpy(_exact_cpu(xe, c, start))
    return _exact_torch(x, cols, start)


def _exact_torch(x: Tensor, cols: Tensor, start: int) -> Tensor:
    """:func:`exact_distances` in torch (the GPU)."""
    out = torch.empty(cols.shape, dtype=torch.float64, device=x.device)
    step = max(1, (4 * 2**20) // max(1, 8 * cols.shape[1] * x.shape[1]))  # cache-sized
    for s in range(0, cols.shape[0], step):
        e = min(cols.shape[0], s + step)
        diff = x[cols[s:e]].double() - x[start + s : start + e, None, :].double()  # [b, c, d]
        out[s:e] = torch.linalg.vector_norm(diff, dim=-1)
    return out


def knn_graph(
    x: Float[Tensor, "point d"],
    *,
    k: int,
    ranks: Iterable[int] = (),
    device: str | torch.device | None = None,
    workspace: Workspace | None = None,
) -> KNNGraph:
    """Nearest-neighbour graph of the rows of ``x`` (which must be distinct).

    Args:
        x: ``[N, D]`` points (any float dtype; searched in float32).
        k: neighbours to keep per point (``1 <= k <= N - 1``).
        ranks: neighbour ranks (``1 .. N - 1``) at which to keep exact float64 distances.
        device: where to search (default: the GPU when present, else the CPU).
        workspace: scratch memory to reuse across calls (a loop over layers passes one).

    Returns:
        A :class:`KNNGraph` on ``device``.
    """
    dev = resolve_device(device)
    n = int(x.shape[0])
    ranks = tuple(sorted({int(r) for r in ranks}))
    if not 1 <= k <= n - 1 or (ranks and not 1 <= ranks[0] <= ranks[-1] <= n - 1):
        raise ValueError(f"need 1 <= k, ranks <= N - 1 = {n - 1}; got k={k}, ranks={ranks}")
    x = x.to(dev)
    # centred (any offset near the mean will do: distances do not depend on it)
    x32 = x.float()
    x32 = x32 - x32.mean(0)
    half_sq = (x32 * x32).sum(1).mul_(0.5)
    if not torch.isfinite(half_sq).all():  # |x|^2 overflows float32: rescale by 2^-e
        scaled = (x * 2.0 ** -math.frexp(float(x.abs().max()))[1]).float()  # ranks unchanged
        x32 = scaled - scaled.mean(0)
        half_sq = (x32 * x32).sum(1).mul_(0.5)
    n_exact = min(n - 1, EXACT_RANKS)
    depth = max(k, n_exact)
    # far ranks within the kept depth are read off the top-k values; only deeper ranks
    # need a full (values-only) sort of every row
    far_top = [r for r in ranks if n_exact < r <= depth]
    far = [r for r in ranks if r > depth]
    workspace = workspace or Workspace()
    near = [r for r in ranks if r <= n_exact]
    near_cols = [r - 1 for r in near]
    if dev.type == "cpu" and depth <= 512:
        h_top, indices, far_h, exact = _search_cpu(
            x, x32, half_sq, depth, far, near_cols, workspace
        )
    else:
        scratch = workspace.take(_block_rows(n, dev), n, dev)
        h_top, indices, far_h, exact = _search_torch(
            x, x32, half_sq, depth, far, near_cols, scratch
        )
    sq = 2.0 * half_sq[:, None]
    top_d2 = h_top[:, [r - 1 for r in far_top]].mul_(2.0).add_(sq).clamp_(min=0.0)
    far_d2 = far_h.mul_(2.0).add_(sq).clamp_(min=0.0)
    columns = list(exact.unbind(1))
    columns += list(top_d2.double().sqrt().unbind(1)) + list(far_d2.double().sqrt().unbind(1))
    dist = (
        torch.stack(columns, 1).cummax(dim=1).values  # near-ties: keep ranks monotone
        if columns
        else torch.empty(n, 0, dtype=torch.float64, device=dev)
    )
    return KNNGraph(indices=indices[:, :k].contiguous(), ranks=ranks, rank_distances=dist)
