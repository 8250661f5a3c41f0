"""Neighbour graphs kept per representations object, so separate metric calls share them.

``geometry()`` builds one graph per layer for all its metrics; this cache does the same
across calls: ``intrinsic_dimension(reps)``, then ``density_clusters(reps)``, then
``label_overlap(reps)`` search each layer once. A search keeps at least
:data:`MIN_DEPTH` neighbours (it costs little more than a shallow one: the product
dominates), so a later call asking for more neighbours or for
exact distances at other ranks up to :data:`~.knn.EXACT_RANKS` is served from the held
graph (the new ranks computed from its indices, ``N D`` each); only ranks beyond those
(GRIDE's large scales) or more neighbours than held need a new search, which then
covers both requests.

Graphs are keyed by layer, device and the exact rows kept (duplicates, and rows dropped
because the second representations of an overlap duplicate them), held weakly with the
representations object (they go when it goes), least recently used first out beyond
:data:`GRAPH_CACHE_BYTES` per object. They assume the object's vectors do not change.

>>> import torch
>>> from idiomlens.representations import Representations
>>> reps = Representations.from_tensors({0: torch.randn(300, 4)})
>>> keep = torch.arange(300)
>>> a = graph_for(reps, 0, keep, reps.vectors(0), k=2, ranks={1, 2})
>>> b = graph_for(reps, 0, keep, reps.vectors(0), k=30, ranks={16})  # served, no search
>>> bool(torch.equal(a.indices, b.indices[:, :2])), held_bytes(reps) > 0
(True, True)
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable

import torch
from torch import Tensor

from ..result import Representations
from .knn import (
    EXACT_RANKS,
    KNNGraph,
    Workspace,
    drop_spare_workspace,
    exact_distances,
    knn_graph,
)

__all__ = ["GRAPH_CACHE_BYTES", "MIN_DEPTH", "graph_for", "held_bytes", "clear"]

#: bytes of graphs held per representations object (0: no cache)
GRAPH_CACHE_BYTES = 256 * 2**20
#: neighbours a search keeps at least (``N - 1`` when fewer points)
MIN_DEPTH = 100

Key = tuple[int, str, str]
_STORES: weakref.WeakKeyDictionary[Representations, OrderedDict[Key, KNNGraph]] = (
    weakref.WeakKeyDictionary()
)
#: guards ``_STORES`` (calls from several threads; a search itself runs unlocked, so two
#: threads asking for the same new graph may both search)
_LOCK = threading.Lock()


def _bytes(graph: KNNGraph) -> int:
    return graph.indices.numel() * 8 + graph.rank_distances.numel() * 8


def held_bytes(reps: Representations) -> int:
    """Bytes of graphs held for ``reps``."""
    with _LOCK:
        return sum(_bytes(g) for g in _STORES.get(reps, {}).values())


def clear(reps: Representations | None = None) -> None:
    """Drop the graphs held for ``reps`` (default: for every object, and the search's
    spare scratch block, :func:`~.knn.spare_workspace`)."""
    with _LOCK:
        if reps is None:
            _STORES.clear()
            drop_spare_workspace()
        else:
            _STORES.pop(reps, None)


def _narrow(graph: KNNGraph, k: int, ranks: set[int]) -> KNNGraph:
    wanted = tuple(sorted(ranks))
    cols = [graph.ranks.index(r) for r in wanted]
    return KNNGraph(graph.indices[:, :k], wanted, graph.rank_distances[:, cols])


def _with_ranks(graph: KNNGraph, x: Tensor, extra: list[int]) -> KNNGraph:
    """``graph`` plus exact distances at ``extra`` ranks (all within its neighbours)."""
    new = exact_distances(x, graph.indices[:, [r - 1 for r in extra]])
    ranks = graph.ranks + tuple(extra)
    order = sorted(range(len(ranks)), key=ranks.__getitem__)
    dist = torch.cat([graph.rank_distances, new], 1)[:, order].cummax(dim=1).values
    return KNNGraph(graph.indices, tuple(ranks[i] for i in order), dist)


def graph_for(
    reps: Representations,
    layer: int,
    keep: Tensor,
    x: Tensor,
    *,
    k: int,
    ranks: Iterable[int],
    device: str | torch.device | None = None,
    workspace: Workspace | None = None,
    min_depth: int = MIN_DEPTH,
) -> KNNGraph:
    """The graph of ``x`` (``reps``'s ``layer`` restricted to the rows ``keep``) with at
    least ``k`` neighbours and distances at ``ranks``: held, widened, or searched (at
    least ``min_depth`` deep)."""
    ranks = {int(r) for r in ranks}
    if GRAPH_CACHE_BYTES <= 0:
        return knn_graph(x, k=k, ranks=ranks, device=device, workspace=workspace)
    digest = hashlib.blake2b(keep.cpu().numpy().tobytes(), digest_size=16).hexdigest()
    key = (int(layer), str(x.device if device is None else torch.device(device)), digest)
    with _LOCK:
        held = _STORES.setdefault(reps, OrderedDict()).get(key)
    graph = None
    if held is not None and held.k >= k:
        extra = sorted(ranks - set(held.ranks))
        if all(r <= min(held.k, EXACT_RANKS) for r in extra):
            graph = _with_ranks(held, x.to(held.indices.device), extra) if extra else held
    if graph is None:
        depth = max(k, min(min_depth, x.shape[0] - 1), held.k if held is not None else 0)
        wanted = ranks | set(held.ranks if held is not None else ())
        graph = knn_graph(x, k=depth, ranks=wanted, device=device, workspace=workspace)
    with _LOCK:
        store = _STORES.setdefault(reps, OrderedDict())
        store[key] = graph
        store.move_to_end(key)
        while store and sum(_bytes(g) for g in store.values()) > GRAPH_CACHE_BYTES:
            store.popitem(last=False)  # least recently used first (perhaps this one)
    return _narrow(graph, k, ranks)
