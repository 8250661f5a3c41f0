"""The preconditioner Gram (probes/gram.py): exact integer products of the int8-rounded
rows, positive semi-definite, close to the float Gram, and a float fallback."""

from __future__ import annotations

import pytest
import torch

from idiomlens._blas import batched_gram
from idiomlens.representations.probes import gram as G


def _standardised(n: int = 700, d: int = 24, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, n, d, generator=g) @ torch.randn(d, d, generator=g)  # correlated
    x[0, 3, 5] = 40.0  # an outlier beyond CLIP standard deviations saturates
    x = x - x.mean(1, keepdim=True)
    return x / x.pow(2).mean(1, keepdim=True).sqrt()


def test_quantised_gram_is_the_exact_gram_of_the_rounded_rows(monkeypatch):
    x = _standardised()[0]
    s = G.CLIP / 127
    q = (x.double() / s).round().clamp(-127, 127) * s  # the reference rounding, in float64
    want = q.T @ q
    torch.testing.assert_close(G.quantised_gram(x, s).double(), want, rtol=1e-6, atol=1e-6)
    monkeypatch.setattr(G, "ROWS", 64)  # int32 products over row chunks, summed
    torch.testing.assert_close(G.quantised_gram(x, s).double(), want, rtol=1e-6, atol=1e-6)


def test_preconditioner_gram_is_psd_and_near_the_float_gram(monkeypatch):
    monkeypatch.setattr(G, "INT8", True)  # whatever this CPU is
    x = _standardised()
    got = G.preconditioner_gram(x)
    exact = batched_gram(x.double()) / x.shape[1]
    assert got.dtype == torch.float32 and got.shape == (2, 24, 24)
    assert torch.linalg.eigvalsh(got.double()).min() > -1e-5
    s = G.CLIP / 127
    gap = (got.double() - exact).abs()
    assert gap[1].max() < s  # rounding: ~s / sqrt(n) per entry, s^2 / 12 on the diagonal
    assert gap[1].max() > 0  # it is the rounded product, not the float one
    assert gap[0].max() > gap[1].max()  # layer 0's saturated outlier costs more


@pytest.mark.parametrize("case", ["float64", "no kernel", "not AVX-512", "switched off"])
def test_float_gram_where_int8_does_not_apply(monkeypatch, case):
    x = _standardised().to(torch.float64 if case == "float64" else torch.float32)
    monkeypatch.setattr(G, "INT8", True)
    if case == "no kernel":  # a torch build without the int8 kernel

        def missing(*_):
            raise RuntimeError("no int8 kernel")

        monkeypatch.setattr(torch, "_int_mm", missing)
    elif case == "not AVX-512":
        monkeypatch.setattr(G, "INT8", None)
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "NEON")
    elif case == "switched off":
        monkeypatch.setattr(G, "INT8", False)
    torch.testing.assert_close(G.preconditioner_gram(x), batched_gram(x) / x.shape[1])
