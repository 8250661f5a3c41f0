"""The probe solver's preconditioner Gram ``X^T X / n`` of standardised training rows.

The preconditioner only has to resemble the Hessian (the solver tests convergence on
the true gradient), and this Gram is its one large cost: a ``[3000, 512]`` float32
layer takes 8 ms in numpy's ``syrk`` on the development machine (AMD EPYC, one thread),
at the CPU's float32 peak. On the CPU :func:`preconditioner_gram` therefore multiplies
the rows rounded to int8, ``q = round(x / s)`` with ``s = CLIP / 127`` (values beyond
``CLIP`` standard deviations saturate), with exact int32 accumulation
(``torch._int_mm``, VNNI on recent x86): ``s^2 q^T q`` in about 3 ms instead of 8-10 ms
(rounding included), and the same solver iterations on ``benchmarks/bench_probes.py``.
That is where torch reports AVX-512 (:data:`INT8`), whose int8 kernels (VNNI on Cascade
Lake, Ice Lake, Zen 4 and later) beat the float32 product; other CPUs, e.g. ARM, where
torch's int8 product may be a slow generic loop, keep the float one.
It is the exact Gram of a slightly perturbed matrix, so positive semi-definite by
construction (the ``+ lambda I`` of the preconditioner keeps the Cholesky factor
defined); rounding adds about ``s^2 / 12`` (3e-4) to its diagonal and ``~s / sqrt(n)``
to each entry. Elsewhere (an accelerator, float64 reference runs, a torch without the
kernel) it is the float32 / float64 product.

>>> x = torch.randn(2, 500, 6)
>>> x = (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True)
>>> exact = x.transpose(1, 2) @ x / 500
>>> bool((preconditioner_gram(x) - exact).abs().max() < 0.02)
True
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from ..._blas import batched_gram

__all__ = ["preconditioner_gram", "quantised_gram", "int8_gram_enabled", "CLIP", "INT8"]

#: standardised values are rounded to int8 steps of ``CLIP / 127`` (beyond: saturated)
CLIP = 8.0
#: rows per int32 product: ``127^2 * ROWS < 2^31``
ROWS = 65536
#: int8 Gram on the CPU: ``None`` where torch reports AVX-512, else ``True`` / ``False``
INT8: bool | None = None


def int8_gram_enabled() -> bool:
    """Whether :func:`preconditioner_gram` uses int8 products for CPU float32 rows."""
    if INT8 is not None:
        return INT8
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")
    return hasattr(torch, "_int_mm") and capability() == "AVX512"


def quantised_gram(x: Float[Tensor, "row col"], step: float) -> Float[Tensor, "col col"]:
    """``s^2 q^T q`` for ``q = clamp(round(x / s), -127, 127)``, ``s = step``, in exact
    integer arithmetic (float32 result)."""
    out = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float32)
    for start in range(0, x.shape[0], ROWS):
        q = (x[start : start + ROWS] * (1.0 / step)).round_().clamp_(-127, 127).to(torch.int8)
        out += torch._int_mm(q.T, q).float()
    return out.mul_(step * step)


def preconditioner_gram(x: Float[Tensor, "layer row col"]) -> Float[Tensor, "layer col col"]:
    """``x[l]^T x[l] / rows`` of standardised ``x`` (unit variance columns): int8 on a
    float32 CPU tensor, exact otherwise (see the module docstring)."""
    n = max(1, x.shape[1])
    if x.device.type != "cpu" or x.dtype != torch.float32 or not int8_gram_enabled():
        return batched_gram(x).div_(n)
    try:
        return torch.stack([quantised_gram(layer, CLIP / 127) for layer in x]).div_(n)
    except RuntimeError:  # no int8 kernel in this build
        return batched_gram(x).div_(n)
