"""The one neighbour graph per layer that every geometry metric reads.

:func:`unique_rows` drops exact duplicate rows (keeping the first), and :func:`knn_graph`
finds, for every point, its nearest neighbours in Euclidean distance, the point itself
never among them. The search is a blocked float32 matmul (numpy's BLAS on the CPU, see
:mod:`idiomlens._blas`; ``|x|^2 + |y|^2 - 2 x.y`` on
mean-centred data, so the cancellation error is relative to the spread of the data, not
to its offset from the origin), on the GPU when one is present; each block of rows is
ranked with one ``topk``. The distances at the ranks asked for, up to
:data:`EXACT_RANKS`, are then recomputed exactly in float64 from the coordinates (to the
neighbour the search put at that rank), so ratios such as ``r2 / r1`` are float64 ratios
of exact distances. Farther ranks (GRIDE's large scales) are read from a values-only sort of each
block and keep the float32 search's precision — relative error about
``1e-7 |x|^2 / r^2`` on mean-centred data, smallest exactly where ``r`` is large.

Cost: ``N^2 D`` multiply-adds for the search, a ``topk`` per row, a sort per row only
when ranks beyond :data:`EXACT_RANKS` are asked for, ``N D`` per exact rank.
Memory: one ``[block, N]`` float32 block at a time plus the graph itself
(``N x k`` int64 indices, ``N x len(ranks)`` float64 distances).

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
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..._blas import matmul_nt

__all__ = ["KNNGraph", "knn_graph", "unique_rows", "resolve_device", "EXACT_RANKS"]

#: ranks up to this one get exact float64 distances (farther ones: float32 precision)
EXACT_RANKS = 32
#: bytes of float32 distances per block (per-row ranking scratch comes on top)
BLOCK_BYTES = {"cpu": 128 * 2**20, "cuda": 1024 * 2**20}


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

    >>> unique_rows(torch.tensor([[1.0, 2.0], [0.0, 0.0], [1.0, 2.0], [3.0, 0.0]])).tolist()
    [0, 1, 3]
    """
    n = x.shape[0]
    _, inverse = torch.unique(x, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), n, dtype=torch.long, device=x.device)
    first.scatter_reduce_(0, inverse, torch.arange(n, device=x.device), reduce="amin")
    return first.sort().values


def _block_rows(n: int, device: torch.device) -> int:
    budget = BLOCK_BYTES.get(device.type, BLOCK_BYTES["cuda"])
    return max(1, min(n, budget // (4 * n)))


def _rank_block(d2: Tensor, depth: int) -> tuple[Tensor, Tensor]:
    """Values and indices of the ``depth`` smallest entries of every row, nearest first."""
    if depth > 512 and 8 * depth > d2.shape[1]:  # deep lists: one sort beats a deep topk
        idx = d2.argsort(dim=1)[:, :depth]
        return d2.gather(1, idx), idx
    values, idx = d2.topk(depth, dim=1, largest=False, sorted=True)
    return values, idx


def _far_values(d2: Tensor, ranks: list[int]) -> Tensor:
    """The squared distances at ``ranks`` of every row (a values-only sort)."""
    cols = [r - 1 for r in ranks]
    if d2.device.type == "cpu":  # numpy's SIMD sort is several times torch's on CPU
        return torch.from_numpy(np.sort(d2.numpy(), axis=1)[:, cols])
    return d2.sort(dim=1).values[:, cols]


def _exact_distances(x64: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """``|x64[rows[:, None]] - x64[cols]|`` in float64, a few rows at a time."""
    out = torch.empty(cols.shape, dtype=torch.float64, device=x64.device)
    step = max(1, (4 * 2**20) // max(1, 8 * cols.shape[1] * x64.shape[1]))  # cache-sized
    for s in range(0, cols.shape[0], step):
        diff = x64[cols[s : s + step]] - x64[rows[s : s + step], None, :]  # [b, c, d]
        out[s : s + step] = torch.linalg.vector_norm(diff, dim=-1)
    return out


def knn_graph(
    x: Float[Tensor, "point d"],
    *,
    k: int,
    ranks: Iterable[int] = (),
    device: str | torch.device | None = None,
) -> KNNGraph:
    """Nearest-neighbour graph of the rows of ``x`` (which must be distinct).

    Args:
        x: ``[N, D]`` points (any float dtype; searched in float32).
        k: neighbours to keep per point (``1 <= k <= N - 1``).
        ranks: neighbour ranks (``1 .. N - 1``) at which to keep exact float64 distances.
        device: where to search (default: the GPU when present, else the CPU).

    Returns:
        A :class:`KNNGraph` on ``device``.
    """
    dev = resolve_device(device)
    n = int(x.shape[0])
    ranks = tuple(sorted({int(r) for r in ranks}))
    if not 1 <= k <= n - 1 or (ranks and not 1 <= ranks[0] <= ranks[-1] <= n - 1):
        raise ValueError(f"need 1 <= k, ranks <= N - 1 = {n - 1}; got k={k}, ranks={ranks}")
    x64 = x.to(dev, torch.float64)
    x64 = x64 - x64.mean(0)
    x32 = x64.float()
    sq = (x32 * x32).sum(1)
    n_exact = min(n - 1, EXACT_RANKS)
    depth = max(k, n_exact)
    # far ranks within the kept depth are read off the top-k values; only deeper ranks
    # need a full (values-only) sort of every row
    far_top = [r for r in ranks if n_exact < r <= depth]
    far = [r for r in ranks if r > depth]
    indices = torch.empty(n, depth, dtype=torch.long, device=dev)
    top_d2 = torch.empty(n, len(far_top), dtype=torch.float32, device=dev)
    far_d2 = torch.empty(n, len(far), dtype=torch.float32, device=dev)
    block = _block_rows(n, dev)
    for s in range(0, n, block):
        e = min(n, s + block)
        # |x_j|^2 - 2 x_i.x_j ranks row i as d2 does (|x_i|^2 is added to the kept values)
        d2 = matmul_nt(x32[s:e], x32).mul_(-2.0).add_(sq[None, :])  # [b, N]
        d2[torch.arange(e - s, device=dev), torch.arange(s, e, device=dev)] = math.inf
        values, indices[s:e] = _rank_block(d2, depth)  # [b, depth]
        values = values.add_(sq[s:e, None]).clamp_(min=0.0)
        if far_top:
            top_d2[s:e] = values[:, [r - 1 for r in far_top]]
        if far:
            far_d2[s:e] = _far_values(d2, far).add_(sq[s:e, None]).clamp_(min=0.0)
        del d2
    near = [r for r in ranks if r <= n_exact]
    rows = torch.arange(n, device=dev)
    columns = list(_exact_distances(x64, rows, indices[:, [r - 1 for r in near]]).unbind(1))
    columns += list(top_d2.double().sqrt().unbind(1)) + list(far_d2.double().sqrt().unbind(1))
    dist = (
        torch.stack(columns, 1).cummax(dim=1).values  # near-ties: keep ranks monotone
        if columns
        else torch.empty(n, 0, dtype=torch.float64, device=dev)
    )
    return KNNGraph(indices=indices[:, :k].contiguous(), ranks=ranks, rank_distances=dist)
