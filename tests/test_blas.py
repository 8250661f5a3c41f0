"""The CPU product helpers: both product paths agree with numpy, and pooled workers
set torch to one thread each."""

import numpy as np
import pytest
import torch

from idiomlens import _blas


@pytest.mark.parametrize("intel", [True, False])
def test_matmul_into_equals_numpy_for_views_on_both_paths(monkeypatch, intel):
    monkeypatch.setitem(_blas._STATE, "intel", intel)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((70, 9)).astype(np.float32)
    out = np.zeros((30, 40), np.float32)
    _blas.matmul_into(x[10:40], x[30:].T, out[:, :40])  # a transposed view, as the search
    np.testing.assert_allclose(out, x[10:40] @ x[30:].T, rtol=1e-5, atol=1e-5)


def test_the_cpu_vendor_check_reads_cpuinfo_once(monkeypatch):
    monkeypatch.delitem(_blas._STATE, "intel", raising=False)
    first = _blas._intel()
    assert isinstance(first, bool) and _blas._STATE["intel"] == first
    if first:
        assert torch.backends.mkl.is_available()


def test_pooled_workers_set_torch_to_one_thread_each(monkeypatch):
    """A worker thread does not inherit the caller's setting (a torch product in it ran
    10-15% slower on two workers): each sets its own, to one."""
    import threading

    calls = []
    real = torch.set_num_threads

    def recording(n):
        calls.append((threading.get_ident(), n))
        real(n)

    monkeypatch.setattr(torch, "set_num_threads", recording)
    previous = torch.get_num_threads()
    real(2)
    try:
        workers = _blas.map_on_threads(lambda _: threading.get_ident(), range(8), workers=2)
        assert torch.get_num_threads() == 2  # the caller's setting is restored
    finally:
        real(previous)
    caller = threading.get_ident()
    for worker in set(workers) - {caller}:
        assert (worker, 1) in calls
    assert set(workers) - {caller}  # the work ran on the pool
