"""kNN density and Advanced Density Peaks clustering (d'Errico et al. 2021), vectorised.

Re-implements DADApy's ``compute_density_kNN`` and ``compute_clustering_ADP`` (its
Cython ``_compute_clustering``, ``halo=False``) step by step, in the same order:

1. log density ``log k - log(V_d r_k^d) - log N`` with ``V_d = pi^(d/2) / Gamma(d/2 + 1)``,
   error ``1 / sqrt(k)``; shifted to ``rho_c = log_den - min(log_den - Z err) + 1`` and
   ``g = rho_c - err``.
2. putative centres: points whose ``g`` is not below any of their ``k`` neighbours';
   a centre inside the ``k``-neighbourhood of a point of higher ``g`` is removed.
3. preliminary assignment: in decreasing ``g``, a point joins the cluster of its nearest
   neighbour (among all ``maxk``) that is a centre or was assigned before it — i.e. of
   higher ``g``. That is a forest of parent pointers, resolved here by pointer jumping.
4. saddles: a non-centre ``p1`` of cluster ``c`` borders cluster ``c'`` through its
   nearest ``k``-neighbour ``p2`` outside ``c``, when ``p1`` is the nearest point of
   ``c`` among ``p2``'s ``maxk`` neighbours; the saddle of a pair is its border point of
   highest ``g`` (``rho_c`` and ``err`` are read there).
5. merging: while some pair is not significant (``rho_c[centre] - rho_saddle <
   Z (err[centre] + err_saddle)`` for either centre), merge the pair with the highest
   saddle, the less significant peak into the other, and update saddles to the maximum.

Points that step 3 cannot place (no centre or earlier point among their ``maxk``
neighbours — rare) follow DADApy's fallback: the highest-``g`` point that removed one
of the centres in their neighbourhood; failing that, the highest-``g`` centre.

The steps run in numpy on the CPU whatever the graph's device (the arrays are ``N x
maxk`` at most): gathers such as ``rank[nbr]`` on a ``[5000, 100]`` graph took 0.3-0.5
ms in numpy against 1.5-1.9 ms in torch, and the whole clustering 7-8 against 18-20 ms
(AMD EPYC, one thread).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

__all__ = ["knn_log_density", "adp_clusters"]


def knn_log_density(
    r_k: Float[Tensor, " point"], intrinsic_dim: float, k: int
) -> tuple[Float[Tensor, " point"], Float[Tensor, " point"]]:
    """DADApy's kNN log density (normalised by ``N``) and its error, float64.

    >>> ld, err = knn_log_density(torch.tensor([1.0, 2.0]), 1.0, 2)
    >>> [round(v, 4) for v in ld.tolist()], err.tolist()
    ([-0.6931, -1.3863], [0.7071067811865475, 0.7071067811865475])
    """
    d = float(intrinsic_dim)
    log_prefactor = d / 2.0 * math.log(math.pi) - math.lgamma((d + 2) / 2)
    n = r_k.shape[0]
    log_den = math.log(k) - (log_prefactor + d * torch.log(r_k.double())) - math.log(n)
    return log_den, torch.full_like(log_den, 1.0 / math.sqrt(k))


def _first_true(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: whether any entry is true, and the column of the first true one (0 if
    none)."""
    return mask.any(1), mask.argmax(1)


def _centres(g: np.ndarray, nbr: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Kept centres (ascending) and, per point, the highest-g point that removed it (-1)."""
    n = g.shape[0]
    near = nbr[:, :k]
    g_near = g[near]
    is_centre = ~(g[:, None] < g_near).any(1)
    hits = is_centre[near] & (g[:, None] > g_near)  # [point, k]: point outranks centre
    src = np.nonzero(hits)[0]  # row-major: by point, then by neighbour rank
    dst = near[hits]
    best = np.full(n, -math.inf)
    np.maximum.at(best, dst, g[src])
    remover = np.full(n, -1, dtype=np.int64)
    top = g[src] == best[dst]
    remover[dst[top]] = src[top]  # equal g: the last in that order
    removed = np.zeros(n, dtype=bool)
    removed[dst] = True
    return np.flatnonzero(is_centre & ~removed), remover


def _assign(g: np.ndarray, nbr: np.ndarray, centres: np.ndarray, remover: np.ndarray) -> np.ndarray:
    """Preliminary cluster of every point (step 3), as an index into ``centres``."""
    n = g.shape[0]
    order = np.argsort(-g, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    is_centre = np.zeros(n, dtype=bool)
    is_centre[centres] = True
    ok = is_centre[nbr] | (rank[nbr] < rank[:, None])  # [point, maxk]
    found, first = _first_true(ok)
    parent = nbr[np.arange(n), first]
    for p in np.flatnonzero(~found & ~is_centre).tolist():  # rare: DADApy's fallback
        cand = remover[np.concatenate([[p], nbr[p]])]  # through removed centres
        cand = cand[(cand >= 0) & (rank[np.maximum(cand, 0)] < rank[p])]
        if cand.size == 0:
            cand = centres
        parent[p] = cand[np.argmax(g[cand])]
    parent[centres] = centres
    for _ in range(max(1, n.bit_length() + 1)):  # pointer jumping to the roots
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            break
        parent = nxt
    label = np.full(n, -1, dtype=np.int64)
    label[centres] = np.arange(centres.size)
    return label[parent]


def _saddles(
    g: np.ndarray,
    rho_c: np.ndarray,
    err: np.ndarray,
    nbr: np.ndarray,
    k: int,
    label: np.ndarray,
    centres: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Saddle density and error matrices ``[cluster, cluster]`` (step 4)."""
    n, m = g.shape[0], centres.size
    not_centre = np.ones(n, dtype=bool)
    not_centre[centres] = False
    has, first = _first_true(label[nbr[:, :k]] != label[:, None])
    p1 = np.flatnonzero(has & not_centre)
    p2 = nbr[p1, first[p1]]
    c, cp = label[p1], label[p2]
    hit, pos = _first_true(label[nbr[p2]] == c[:, None])  # [border, maxk]
    valid = ~hit | (nbr[p2, pos] == p1)
    p1, c, cp = p1[valid], c[valid], cp[valid]
    key = np.minimum(c, cp) * m + np.maximum(c, cp)
    best = np.full(m * m, -math.inf)
    np.maximum.at(best, key, g[p1])
    top = g[p1] == best[key]  # ties: the first in DADApy's loop order (cluster, index)
    order = np.full(m * m, n * m, dtype=np.int64)
    np.minimum.at(order, key[top], (c * n + p1)[top])
    pairs = np.flatnonzero(order < n * m)
    point = order[pairs] % n
    bord, bord_err = np.zeros(m * m), np.zeros(m * m)
    bord[pairs], bord_err[pairs] = rho_c[point], err[point]
    bord, bord_err = bord.reshape(m, m), bord_err.reshape(m, m)
    bord = np.maximum(bord, bord.T)  # symmetrise (one triangle is set)
    bord_err = np.maximum(bord_err, bord_err.T)
    np.fill_diagonal(bord, -1.0)
    np.fill_diagonal(bord_err, 0.0)
    return bord, bord_err


def _merge(
    rho_centre: np.ndarray, err_centre: np.ndarray, bord: np.ndarray, bord_err: np.ndarray, z: float
) -> np.ndarray:
    """Step 5 on ``[cluster]`` / ``[cluster, cluster]`` float64 arrays (``bord`` and
    ``bord_err`` are overwritten) -> owner map."""
    m = rho_centre.size
    owner = np.arange(m)
    upper = np.triu(np.ones((m, m), dtype=bool), k=1)
    while m > 1:
        weak = (rho_centre[:, None] - bord < z * (err_centre[:, None] + bord_err)) | (
            rho_centre[None, :] - bord < z * (err_centre[None, :] + bord_err)
        )
        weak &= upper
        if not weak.any():
            break
        i, j = divmod(int(np.where(weak, bord, -math.inf).argmax()), m)  # highest saddle,
        s, se = bord[i, j], bord_err[i, j]  # the first in (i, j) order
        c1 = (rho_centre[i] - s) / (err_centre[i] + se)
        c2 = (rho_centre[j] - s) / (err_centre[j] + se)
        keep, drop = (j, i) if c1 < c2 else (i, j)
        owner[owner == drop] = keep
        bord[keep, drop] = bord[drop, keep] = -1.0
        bord_err[keep, drop] = bord_err[drop, keep] = 0.0
        rest = np.ones(m, dtype=bool)
        rest[[keep, drop]] = False
        up = rest & (bord[keep] < bord[drop])
        bord[keep, up] = bord[drop, up]
        bord_err[keep, up] = bord_err[drop, up]
        bord[up, keep], bord_err[up, keep] = bord[keep, up], bord_err[keep, up]
        bord[drop, rest] = bord[rest, drop] = -1.0
        bord_err[drop, rest] = bord_err[rest, drop] = 0.0
    return owner


def adp_clusters(
    indices: Int[Tensor, "point maxk"],
    log_den: Float[Tensor, " point"],
    log_den_err: Float[Tensor, " point"],
    *,
    k: int,
    Z: float = 1.6,
) -> Int[Tensor, " point"]:
    """ADP partition (``halo=False``): a cluster index per point, numbered 0, 1, ...

    ``indices`` are the neighbours (self excluded, nearest first); the first ``k`` are
    each point's density neighbourhood, all ``maxk`` are searched when assigning points
    and checking borders (DADApy: ``maxk = min(100, N - 1)``).

    >>> import torch
    >>> x = torch.cat([torch.randn(60, 2, generator=torch.Generator().manual_seed(0)) * 0.1,
    ...                torch.randn(60, 2, generator=torch.Generator().manual_seed(1)) * 0.1 + 5])
    >>> from idiomlens.representations.geometry.knn import knn_graph
    >>> graph = knn_graph(x, k=30, ranks=(8,))
    >>> ld, err = knn_log_density(graph.distance(8), 2.0, 8)
    >>> labels = adp_clusters(graph.indices, ld, err, k=8)
    >>> labels.unique().numel(), bool((labels[:60] == labels[0]).all())
    (2, True)
    """
    nbr = indices.detach().cpu().long().numpy()
    log_den = log_den.detach().double().cpu().numpy()
    err = log_den_err.detach().double().cpu().numpy()
    rho_c = log_den - (log_den - Z * err).min() + 1.0
    g = rho_c - err
    centres, remover = _centres(g, nbr, k)
    label = _assign(g, nbr, centres, remover)
    bord, bord_err = _saddles(g, rho_c, err, nbr, k, label, centres)
    owner = _merge(rho_c[centres], err[centres], bord, bord_err, Z)
    survivors = np.unique(owner)  # ascending: DADApy's final numbering
    renumber = np.full(owner.size, -1, dtype=np.int64)
    renumber[survivors] = np.arange(survivors.size)
    return torch.from_numpy(renumber[owner][label]).to(indices.device)
