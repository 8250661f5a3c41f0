"""Separate metric calls share one search per layer (geometry/graphs.py), with results equal
to searching afresh every time."""

from __future__ import annotations

import gc

import pytest
import torch

from idiomlens.representations import Representations
from idiomlens.representations.geometry import (
    density_clusters,
    graphs,
    intrinsic_dimension,
    label_overlap,
    neighbourhood_overlap,
)

Q = {"progress": False}


def _reps(seed: int = 0, n: int = 400) -> tuple[Representations, Representations]:
    g = torch.Generator().manual_seed(seed)
    labels = [f"c{i % 4}" for i in range(n)]
    centres = torch.randn(4, 6, generator=g) * 8
    x = {layer: centres[torch.arange(n) % 4] + torch.randn(n, 6, generator=g) for layer in (0, 3)}
    y = {layer: v + torch.randn(n, 6, generator=g) for layer, v in x.items()}
    y[3][10] = y[3][11]  # a duplicate in the second space only: fewer rows kept jointly
    return Representations.from_tensors(x, labels={"c": labels}), Representations.from_tensors(y)


def _calls(reps, other):
    return [
        lambda: intrinsic_dimension(reps, **Q)["id"],
        lambda: density_clusters(reps, **Q)["ari"],
        lambda: label_overlap(reps, **Q)["overlap"],
        lambda: intrinsic_dimension(reps, method="gride", max_scale=4, **Q)["id"],
        lambda: intrinsic_dimension(reps, method="gride", **Q)["id"],  # ranks up to N / 2
        lambda: neighbourhood_overlap(reps, other, **Q)["overlap"],
    ]


def test_separate_calls_search_each_layer_once_and_equal_fresh_searches(monkeypatch):
    reps, other = _reps()
    searches: list[int] = []
    real = graphs.knn_graph
    monkeypatch.setattr(graphs, "knn_graph", lambda *a, **kw: searches.append(1) or real(*a, **kw))
    got, counts = [], []
    for call in _calls(reps, other):
        got.append(call())
        counts.append(len(searches))
    # one search per layer serves TwoNN, clusters, label overlap and GRIDE to rank 8;
    # GRIDE's large scales need the sorted rows (one more per layer); the overlap keeps
    # fewer rows at layer 3 (two new searches there), the same rows at layer 0 (one,
    # for the second space)
    assert counts == [2, 2, 2, 2, 4, 7]
    # the second space's lists are only read k = 30 deep: searched no deeper
    assert {g.k for g in graphs._STORES[other].values()} == {30}
    monkeypatch.setattr(graphs, "GRAPH_CACHE_BYTES", 0)
    fresh = [call() for call in _calls(*_reps())]
    for a, b in zip(got, fresh, strict=True):
        torch.testing.assert_close(
            torch.tensor(a.to_numpy(float)), torch.tensor(b.to_numpy(float)),
            rtol=1e-12, atol=0, equal_nan=True,
        )  # fmt: skip


def test_held_graphs_are_bounded_and_go_with_their_representations(monkeypatch):
    reps, _ = _reps(1)
    intrinsic_dimension(reps, layers=[0], **Q)
    one_layer = graphs.held_bytes(reps)
    assert one_layer > 0
    monkeypatch.setattr(graphs, "GRAPH_CACHE_BYTES", one_layer)
    intrinsic_dimension(reps, **Q)  # two layers: the least recently used one goes
    assert graphs.held_bytes(reps) == one_layer
    monkeypatch.setattr(graphs, "GRAPH_CACHE_BYTES", one_layer - 1)
    intrinsic_dimension(reps, layers=[0], **Q)  # too large to keep at all
    assert graphs.held_bytes(reps) == 0
    monkeypatch.undo()
    intrinsic_dimension(reps, **Q)
    assert reps in graphs._STORES
    stores = len(graphs._STORES)
    del reps
    gc.collect()
    assert len(graphs._STORES) == stores - 1


@pytest.mark.parametrize(
    "k,ranks,searches", [(5, {1, 4, 16}, 0), (30, {2, 32, 64}, 1), (150, {1, 4}, 1)]
)
def test_a_held_graph_widened_or_searched_equals_a_direct_search(monkeypatch, k, ranks, searches):
    from idiomlens.representations.geometry.knn import knn_graph

    reps, _ = _reps(2)
    x, keep = reps.vectors(0), torch.arange(400)
    graphs.graph_for(reps, 0, keep, x, k=3, ranks={1, 2})  # holds 100 neighbours
    calls: list[int] = []
    real = graphs.knn_graph
    monkeypatch.setattr(graphs, "knn_graph", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    got = graphs.graph_for(reps, 0, keep, x, k=k, ranks=ranks)
    assert len(calls) == searches  # exact ranks <= 32 within the held neighbours: no search
    want = knn_graph(x, k=k, ranks=ranks)
    assert torch.equal(got.indices, want.indices) and got.ranks == want.ranks
    torch.testing.assert_close(got.rank_distances, want.rank_distances, rtol=1e-12, atol=0)


def test_calls_from_several_threads_share_one_object_safely(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    g = torch.Generator().manual_seed(3)
    reps = Representations.from_tensors(
        {layer: torch.randn(150, 5, generator=g) for layer in range(6)}
    )
    keep = torch.arange(150)
    serial = [graphs.graph_for(reps, layer, keep, reps.vectors(layer), k=8, ranks={1, 8}) for layer in range(6)]  # fmt: skip
    per_layer = graphs.held_bytes(reps) // 6
    graphs.clear(reps)
    # room for two layers' graphs: threads evict while others look up and insert
    monkeypatch.setattr(graphs, "GRAPH_CACHE_BYTES", 2 * per_layer)

    def call(i: int) -> tuple[int, graphs.KNNGraph]:
        layer = i % 6
        return layer, graphs.graph_for(reps, layer, keep, reps.vectors(layer), k=8, ranks={1, 8})

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(96)))
    for layer, graph in results:
        assert torch.equal(graph.indices, serial[layer].indices)
        torch.testing.assert_close(graph.rank_distances, serial[layer].rank_distances)
    assert graphs.held_bytes(reps) <= graphs.GRAPH_CACHE_BYTES


def test_successive_calls_reuse_one_spare_search_block(monkeypatch):
    from idiomlens.representations.geometry import knn

    graphs.clear()  # no graph held, no spare block
    assert knn._SPARE == []
    reps, _ = _reps(seed=4)
    blocks = []
    real = knn.Workspace.take

    def take(self, rows, cols, device):
        out = real(self, rows, cols, device)
        blocks.append((id(self), out.data_ptr()))
        return out

    monkeypatch.setattr(knn.Workspace, "take", take)
    first = intrinsic_dimension(reps, **Q)["id"]
    graphs.clear(reps)  # graphs dropped: the next call searches again, in the kept block
    assert len(knn._SPARE) == 1 and knn._SPARE[0].nbytes > 0
    again = intrinsic_dimension(reps, **Q)["id"]
    assert len(blocks) == 4 and len(set(blocks)) == 1  # 2 layers x 2 calls, one block
    assert first.tolist() == again.tolist()
    graphs.clear()
    assert knn._SPARE == []
    # a block larger than SPARE_WORKSPACE_BYTES is not kept
    monkeypatch.setattr(knn, "SPARE_WORKSPACE_BYTES", 0)
    intrinsic_dimension(reps, **Q)
    assert knn._SPARE == []


def test_a_run_while_another_holds_the_spare_block_gets_its_own():
    from idiomlens.representations.geometry import knn

    graphs.clear()
    with knn.spare_workspace() as outer, knn.spare_workspace() as inner:
        assert outer is not inner
        outer.take(2, 3, torch.device("cpu"))
        inner.take(4, 3, torch.device("cpu"))
    assert len(knn._SPARE) == 1  # one kept, the other freed
    graphs.clear()
