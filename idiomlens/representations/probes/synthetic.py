"""Synthetic representations with a planted, linearly decodable label (tests, benchmarks).

Every layer is anisotropic Gaussian noise (a decaying spectrum, like real residual
streams, which makes the probe problem ill-conditioned); the layers in ``signal`` add a
class-dependent shift along random directions of size ``strength`` (in units of the
noise's typical per-direction std), so the label is linearly decodable there only.

>>> reps = planted_representations(n=60, d_model=8, layers=3, signal=(1,), seed=0)
>>> reps.layers, tuple(reps.vectors(0).shape), sorted(set(reps.labels["label"]))
((0, 1, 2), (60, 8), [0, 1])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..result import Representations

__all__ = ["planted_representations"]


def planted_representations(
    *,
    n: int = 400,
    d_model: int = 32,
    layers: int = 4,
    signal: Sequence[int] = (1,),
    n_classes: int = 2,
    strength: float = 1.0,
    decay: float = 1.0,
    seed: int = 0,
) -> Representations:
    """``layers`` matrices ``[n, d_model]`` with labels ``0 .. n_classes-1`` (balanced).

    Args:
        signal: the layers where the label is planted (others are pure noise).
        strength: shift between class means, per unit of noise std along it.
        decay: the noise spectrum falls as ``k ** -decay`` over directions ``k``.
    """
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % n_classes
    y = y[torch.randperm(n, generator=gen)]
    scale = torch.arange(1, d_model + 1, dtype=torch.float32) ** -decay
    tensors = {}
    for layer in range(layers):
        basis, _ = torch.linalg.qr(torch.randn(d_model, d_model, generator=gen))
        x = (torch.randn(n, d_model, generator=gen) * scale) @ basis.T
        if layer in signal:
            means = torch.randn(n_classes, d_model, generator=gen)
            means = means / means.norm(dim=1, keepdim=True)
            typical = float(scale.pow(2).mean().sqrt())
            x = x + strength * typical * means[y]
        tensors[layer] = x + 3.0  # an offset: standardisation must remove it
    return Representations.from_tensors(
        tensors, ids=[f"ex-{i:05d}" for i in range(n)], labels={"label": y.tolist()}
    )
