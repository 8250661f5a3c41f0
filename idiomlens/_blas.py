"""The large CPU products of the probes and the kNN search, through numpy's BLAS.

PyTorch's CPU wheels call MKL; numpy's wheels ship OpenBLAS. On AMD CPUs MKL takes a
slower path for these shapes: on the AMD EPYC this project is developed on (one thread),
the Gram product ``x^T x`` of a ``[3000, 512]`` float32 matrix takes 17 ms in torch and
9 ms in numpy, and a ``[1000, 512] x [512, 5000]`` distance block 100 ms and 56 ms. So
:func:`batched_gram` and :func:`matmul_nt` use numpy on the CPU (on an Intel CPU MKL may
be somewhat faster; timing both at run time proved too noisy to choose by), and torch
on every other device.

Threads: :func:`blas_threads` limits numpy's BLAS for a call. OpenBLAS's worker threads
and torch's OpenMP threads both busy-wait after each piece of work; with both pools at
two threads on the 2-core development machine every small torch operation of a probe
run took milliseconds (the run 0.69 s instead of 0.30 s). Products that come between
many small torch operations therefore run on one BLAS thread, and the long distance
blocks on ``torch.get_num_threads()``.

>>> x = torch.randn(3, 50, 4, dtype=torch.float64)
>>> torch.allclose(batched_gram(x), x.transpose(1, 2) @ x)
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["batched_gram", "blas_threads", "matmul_nt"]

_STATE: dict[str, Any] = {}


def blas_threads(n: int = 1) -> Any:
    """A context limiting numpy's BLAS to ``n`` threads."""
    if "controller" not in _STATE:
        from threadpoolctl import ThreadpoolController

        _STATE["controller"] = ThreadpoolController()
    return _STATE["controller"].limit(limits=n, user_api="blas")


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


def matmul_nt(a: Float[Tensor, "m k"], b: Float[Tensor, "n k"]) -> Float[Tensor, "m n"]:
    """``a @ b.T`` on ``a``'s device (numpy's BLAS on the CPU: 1.8x torch's for the
    ``[1000, 512] x [512, 5000]`` blocks of a kNN search, one thread). Large products
    use ``torch.get_num_threads()`` BLAS threads: the OpenMP contention described above
    only matters for many small operations.

    >>> a, b = torch.randn(4, 3), torch.randn(5, 3)
    >>> torch.allclose(matmul_nt(a, b), a @ b.T, atol=1e-6)
    True
    """
    if a.device.type != "cpu" or a.dtype not in (torch.float32, torch.float64):
        return a @ b.T
    out = torch.empty(a.shape[0], b.shape[0], dtype=a.dtype)
    with blas_threads(torch.get_num_threads()):
        np.matmul(a.detach().numpy(), b.detach().numpy().T, out=out.numpy())
    return out
