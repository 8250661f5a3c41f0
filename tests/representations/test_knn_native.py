"""The kNN search's C kernels (idiomlens/_native) equal its numpy path and a stable sort,
and the search falls back to numpy when they cannot be built."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
import torch

from idiomlens import _native
from idiomlens._blas import pool_threads, torch_on_one_thread
from idiomlens.representations.geometry import knn, ranking

HAVE_CC = any(shutil.which(c) for c in ("cc", "gcc", "clang"))
kernels = knn.knn_kernels() if HAVE_CC else None
needs_kernels = pytest.mark.skipif(not HAVE_CC, reason="no C compiler on this machine")


@needs_kernels
def test_the_kernels_build_where_there_is_a_compiler():
    assert kernels is not None, _native.native_status()
    assert _native.native_status().startswith("loaded ")


def _h(seed: int, r: int, n: int, levels: int | None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((r, n)).astype(np.float32)
    if levels:  # few distinct values: ties everywhere, at the bound too
        h = rng.integers(0, levels, h.shape).astype(np.float32)
    return h


@needs_kernels
@pytest.mark.parametrize("n", [40, 700, 5003])
@pytest.mark.parametrize("levels", [None, 3, 40])
@pytest.mark.parametrize("cuts", [(), (1,), (64, 300)])
def test_native_rows_equal_a_stable_sort(n, levels, cuts):
    """Rows of h = 0 - p given as pieces of either layout (kind 1 transposed) rank as a
    stable sort of h with each row's own column left out, ties in column order, for
    exact bounds (short rows), group bounds, and rows mostly one value."""
    r, row0 = 37, min(n - 37, 25)
    h = _h(n + (levels or 0), r, n, levels)
    h[3, 10:] = h[3, 9]  # one row mostly one value: more survivors than the kernel keeps
    p = np.ascontiguousarray(-h)
    hsq = np.zeros(n, np.float32)
    edges = [0, *[c for c in cuts if c < n], n]
    parts = []
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        if i % 2 == 0 and len(edges) > 2:  # transposed, as the triangle's earlier blocks
            parts.append((np.ascontiguousarray(p[:, a:b].T), a, 1))
        else:
            parts.append((p[:, a:b], a, 0))
    want_h = h.copy()
    want_h[np.arange(r), row0 + np.arange(r)] = np.inf
    for depth in sorted({1, 5, 17, min(100, n - 1)}):
        values, cols = ranking._rank_native(kernels, parts, hsq, row0, r, depth, threading.local())
        want = np.argsort(want_h, axis=1, kind="stable")[:, :depth]
        assert np.array_equal(cols, want), depth
        assert np.array_equal(values, np.take_along_axis(want_h, want, 1)), depth


def _numpy_path(monkeypatch):
    monkeypatch.setattr(knn, "knn_kernels", lambda: None)


@needs_kernels
@pytest.mark.parametrize("layout", ["symmetric", "strips"])
@pytest.mark.parametrize("data", ["blobs", "integers"])
@pytest.mark.parametrize("threads", [1, 2])
def test_native_search_equals_the_numpy_path(monkeypatch, layout, data, threads):
    rng = np.random.default_rng(5)
    if data == "integers":  # many equal distances
        x = np.unique(rng.integers(0, 4, (900, 5)), axis=0).astype(np.float64)
        x = np.concatenate([x, rng.integers(0, 9, (600, 5)).astype(np.float64) + 0.5])
        x = np.unique(x, axis=0)
    else:
        x = rng.standard_normal((1500, 12)) + 4 * rng.standard_normal((6, 12))[rng.integers(0, 6, 1500)]  # fmt: skip
    x = torch.tensor(x, dtype=torch.float32)
    monkeypatch.setattr(knn, "TASK_ROWS", 97)  # several tasks, a ragged last one
    if layout == "strips":
        monkeypatch.setattr(knn, "SYMMETRIC_BYTES", 0)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for k, ranks in ((100, (1, 2, 4, 8, 16, 32, 64)), (30, ()), (3, (1, 2))):
            got = knn.knn_graph(x, k=k, ranks=ranks, device="cpu")
            with monkeypatch.context() as m:
                _numpy_path(m)
                want = knn.knn_graph(x, k=k, ranks=ranks, device="cpu")
            assert torch.equal(got.indices, want.indices), k
            torch.testing.assert_close(got.rank_distances, want.rank_distances, rtol=1e-13, atol=0)  # fmt: skip
    finally:
        torch.set_num_threads(previous)


@needs_kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_native_exact_distances_equal_float64_differences(dtype):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((300, 37)) * 3 + 100.0).astype(dtype)  # 37: a ragged lane tail
    cols = rng.integers(0, 300, (120, 6))
    want = np.linalg.norm(x[cols].astype(np.float64) - x[50:170, None, :].astype(np.float64), axis=-1)  # fmt: skip
    got = kernels.exact(x, cols[:, ::-1][:, ::-1], 50)  # a non-contiguous view is copied
    np.testing.assert_allclose(got, want, rtol=1e-14)
    np.testing.assert_allclose(knn._exact_cpu(x, cols, 50), want, rtol=1e-14)


def test_exact_distances_reject_indices_outside_the_points():
    x = torch.randn(10, 3)
    with pytest.raises(IndexError, match=r"\[0, 10\)"):
        knn.exact_distances(x, torch.tensor([[1, 10]]))
    with pytest.raises(IndexError, match="rows 9..11"):
        knn.exact_distances(x, torch.tensor([[1], [2]]), start=9)


@pytest.fixture
def fresh_loader(monkeypatch, tmp_path):
    monkeypatch.setattr(_native, "_STATE", {})
    monkeypatch.setenv("IDIOMLENS_NATIVE_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_the_kernels_can_be_switched_off(fresh_loader, monkeypatch):
    monkeypatch.setenv("IDIOMLENS_NATIVE", "0")
    assert _native.knn_kernels() is None
    assert "IDIOMLENS_NATIVE" in _native.native_status()


@needs_kernels
def test_a_failed_build_warns_once_and_the_search_runs_numpy(fresh_loader, monkeypatch):
    monkeypatch.setenv("CC", "false")  # a compiler that always fails
    with pytest.warns(RuntimeWarning, match="numpy path"):
        assert _native.knn_kernels() is None
    assert "failed" in _native.native_status()
    assert not list((fresh_loader / "cache").glob("*.so"))  # nothing half-built is kept
    monkeypatch.setattr(knn, "knn_kernels", _native.knn_kernels)
    g = knn.knn_graph(torch.randn(200, 4), k=5, ranks=(1, 2), device="cpu")
    assert g.indices.shape == (200, 5)


@needs_kernels
def test_a_build_is_cached_and_reused(fresh_loader, monkeypatch):
    first = _native.knn_kernels()
    assert first is not None and first.path.parent == fresh_loader / "cache"
    monkeypatch.setattr(_native, "_STATE", {})  # as a second process: it finds the library

    def no_build(*args, **kwargs):
        raise AssertionError("built again")

    monkeypatch.setattr(_native.subprocess, "run", no_build)
    again = _native.knn_kernels()
    assert again is not None and again.path == first.path


def test_torch_on_one_thread_counts_nested_and_concurrent_uses():
    before = torch.get_num_threads()
    inside = threading.Event()
    release = threading.Event()
    seen: list[tuple[int, int]] = []

    def other() -> None:
        with torch_on_one_thread():
            inside.set()
            release.wait(5)
            seen.append((torch.get_num_threads(), pool_threads()))

    t = threading.Thread(target=other)
    with torch_on_one_thread():
        t.start()
        inside.wait(5)
    assert torch.get_num_threads() == 1  # the other thread is still inside
    release.set()
    t.join()
    assert seen == [(1, before)]
    assert torch.get_num_threads() == before


@needs_kernels
def test_a_build_without_isa_clones_is_tried_and_ranks_the_same(fresh_loader, monkeypatch):
    """Where the clones cannot be built (GCC before 11, musl), a plain build is used; it
    is the baseline code every machine without AVX2 runs, and ranks as the other."""
    real_run = _native.subprocess.run
    tried: list[bool] = []

    def no_clones(args, **kwargs):
        tried.append("-DIDIOMLENS_NO_CLONES" in args)
        if not tried[-1]:
            return real_run(["false"], **kwargs)
        return real_run(args, **kwargs)

    monkeypatch.setattr(_native.subprocess, "run", no_clones)
    plain = _native.knn_kernels()
    assert tried == [False, True] and plain is not None
    h = _h(1, 40, 900, None)
    parts = [(np.ascontiguousarray(-h[:, :300].T), 0, 1), (np.ascontiguousarray(-h[:, 300:]), 300, 0)]  # fmt: skip
    hsq = np.zeros(900, np.float32)
    got = ranking._rank_native(plain, parts, hsq, 10, 40, 30, threading.local())
    want = ranking._rank_native(kernels, parts, hsq, 10, 40, 30, threading.local())
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


@needs_kernels
def test_an_unwritable_cache_builds_in_a_private_folder(fresh_loader, monkeypatch):
    blocker = fresh_loader / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("IDIOMLENS_NATIVE_CACHE", str(blocker / "cache"))  # cannot be made
    got = _native.knn_kernels()
    assert got is not None
    folder = got.path.parent
    assert folder.name.startswith("idiomlens-native-") and (folder.stat().st_mode & 0o077) == 0


@needs_kernels
def test_the_kernels_refuse_buffers_of_the_wrong_size():
    p = np.zeros((8, 50), np.float32)
    pieces = np.array([(p.ctypes.data, 50, 50, 0, 0)], _native.PIECE)
    hsq = np.zeros(50, np.float32)
    mins = np.empty((8, 24), np.float32)  # 25 groups of 2 columns, not 24
    with pytest.raises(ValueError, match="not the pieces' groups"):
        kernels.group_minima(pieces, hsq, 0, 8, 2, mins, np.empty(1, np.float32))
    with pytest.raises(ValueError, match="do not agree"):
        vals, cols = np.empty((8, 4), np.float32), np.empty((8, 4), np.int64)
        kernels.collect(pieces, hsq, 0, 0, 9, np.zeros(8, np.float32), vals, cols, np.empty(8, np.int64))  # fmt: skip
