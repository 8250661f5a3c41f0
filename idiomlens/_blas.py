"""The large CPU products of the probes and the kNN search: numpy's BLAS, or MKL on Intel.

PyTorch's CPU wheels call MKL; numpy's wheels ship OpenBLAS. On AMD CPUs MKL takes a
slower path for these shapes: on an AMD EPYC (one thread), the Gram product ``x^T x`` of
a ``[3000, 512]`` float32 matrix takes 17 ms in torch and 9 ms in numpy, and a
``[1000, 512] x [512, 5000]`` distance block 100 ms and 56 ms. On an Intel Xeon (Sapphire
Rapids) MKL is the faster: the kNN search's packed triangle of 5,000 x 512 points takes
91 against 103 ms at one thread, 47-50 against 55 ms on two. So :func:`matmul_into`
(the kNN search's blocks) uses torch where the CPU says ``GenuineIntel`` (timing both at
run time proved too noisy to choose by) and numpy elsewhere; :func:`batched_gram` uses
numpy on the CPU, and both use torch on every other device.

Threads: :func:`blas_threads` limits numpy's BLAS for a call. OpenBLAS's worker threads
and torch's OpenMP threads both busy-wait after each piece of work; with both pools at
two threads on the 2-core development machine every small torch operation of a probe
run took milliseconds (the run 0.69 s instead of 0.30 s). Products that come between
many small torch operations therefore run on one BLAS thread; the kNN search runs one
single-threaded BLAS product per Python thread.

>>> x = torch.randn(3, 50, 4, dtype=torch.float64)
>>> torch.allclose(batched_gram(x), x.transpose(1, 2) @ x)
True
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

__all__ = [
    "batched_gram",
    "blas_threads",
    "map_on_threads",
    "matmul_into",
    "pool_threads",
    "torch_on_one_thread",
]

T = TypeVar("T")
R = TypeVar("R")

_STATE: dict[str, Any] = {}


def blas_threads(n: int = 1) -> Any:
    """A context limiting numpy's BLAS to ``n`` threads."""
    if "controller" not in _STATE:
        from threadpoolctl import ThreadpoolController

        _STATE["controller"] = ThreadpoolController()
    return _STATE["controller"].limit(limits=n, user_api="blas")


def _intel() -> bool:
    """Whether the CPU is Intel's (read once from ``/proc/cpuinfo``; ``False`` where
    there is none)."""
    if "intel" not in _STATE:
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
                head = f.read(4096)
        except OSError:
            head = ""
        _STATE["intel"] = "GenuineIntel" in head and torch.backends.mkl.is_available()
    return bool(_STATE["intel"])


def matmul_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out = a @ b`` for float32 CPU arrays (views welcome): MKL through torch on Intel
    CPUs, numpy's BLAS elsewhere (see the module's docstring). Threads: the calling
    thread's (one, under :func:`map_on_threads` and :func:`blas_threads`)."""
    if _intel():
        torch.mm(torch.from_numpy(a), torch.from_numpy(b), out=torch.from_numpy(out))
    else:
        np.matmul(a, b, out=out)


def batched_gram(x: Float[Tensor, "batch row col"]) -> Float[Tensor, "batch col col"]:
    """``x[b]^T x[b]`` for every ``b`` (no normalisation), on ``x``'s device and dtype."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return torch.bmm(x.transpose(1, 2), x)
    out = torch.empty(x.shape[0], x.shape[2], x.shape[2], dtype=x.dtype)
    with blas_threads():
        for i in range(x.shape[0]):
            a = x[i].detach().numpy()
            np.matmul(a.T, a, out=out[i].numpy())
    return out


def map_on_threads(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``[fn(item) for item in items]`` on ``workers`` Python threads, torch and numpy's
    BLAS single-threaded meanwhile (``torch.get_num_threads()`` restored afterwards).

    For CPU work split into independent numpy/torch pieces (both release the GIL): one
    pool of threads instead of three (ours, OpenMP's, OpenBLAS's), whose busy-waiting on
    the same cores slowed every piece 2-5x on the development machine. ``workers < 2``
    runs in order on the calling thread, with the thread settings untouched.

    >>> map_on_threads(lambda i: i * i, [1, 2, 3], workers=2)
    [1, 4, 9]
    """
    if workers < 2 or len(items) < 2:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    # each worker sets torch (and MKL with it) to one thread: a product in a new worker
    # otherwise ran 10-15% slower (the caller's setting is not inherited)
    pool = ThreadPoolExecutor(min(workers, len(items)), initializer=torch.set_num_threads, initargs=(1,))  # fmt: skip
    with torch_on_one_thread(), blas_threads(1), pool:
        return list(pool.map(fn, items))


_TORCH: dict[str, int] = {"depth": 0, "threads": 0}
_TORCH_LOCK = threading.Lock()


@contextmanager
def torch_on_one_thread() -> Iterator[None]:
    """Torch's CPU operations on one thread for the duration (nested and concurrent uses
    count: the caller's setting comes back when the last one ends), for work that runs
    its own pool of :func:`pool_threads` threads.

    torch's OpenMP threads busy-wait after every parallel operation (several ms each on
    the development machine), on the cores the pool needs: ``geometry()`` of 2 layers x
    5,000 x 512 at two threads took 0.44-0.46 s with torch on two threads between its
    searches, 0.40-0.44 s on one (``OMP_WAIT_POLICY=PASSIVE``: 0.40-0.41 s).

    >>> before = torch.get_num_threads()
    >>> with torch_on_one_thread():
    ...     torch.get_num_threads(), pool_threads() == before
    (1, True)
    >>> torch.get_num_threads() == before
    True
    """
    with _TORCH_LOCK:
        if _TORCH["depth"] == 0:
            _TORCH["threads"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _TORCH["depth"] += 1
    try:
        yield
    finally:
        with _TORCH_LOCK:
            _TORCH["depth"] -= 1
            if _TORCH["depth"] == 0:
                torch.set_num_threads(_TORCH["threads"])


def pool_threads() -> int:
    """Threads for a CPU pool of ours: ``torch.get_num_threads()``, as the caller set it
    (also inside :func:`torch_on_one_thread`)."""
    with _TORCH_LOCK:
        return _TORCH["threads"] if _TORCH["depth"] else torch.get_num_threads()
