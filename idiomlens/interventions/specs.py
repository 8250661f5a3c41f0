"""Interventions as plain data: *where* (heads, positions) apart from *what* (the value).

A :class:`HeadSite` says which attention heads are intervened on and at which positions;
a replacement value (:class:`ZeroValue`, :class:`MeanValue`, :class:`ResampleValue`)
says what their ``hook_z`` becomes there. :mod:`idiomlens.interventions.hooks` compiles
the pair into TransformerLens forward hooks. Kinds are looked up by name in
:data:`KINDS`, not an ``elif`` chain.

>>> site = HeadSite(heads=((0, 1), (1, 3)))
>>> site.layers
(0, 1)
>>> make_value("zero")
ZeroValue()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from jaxtyping import Bool, Float
from torch import Tensor

__all__ = [
    "HeadSite",
    "ZeroValue",
    "MeanValue",
    "ResampleValue",
    "KINDS",
    "make_value",
    "normalize_heads",
]


def normalize_heads(heads: Iterable[Any] | tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """``(l, h)`` or an iterable of them -> a tuple of unique ``(layer, head)`` int pairs.

    >>> normalize_heads((0, 1))
    ((0, 1),)
    >>> normalize_heads([(1, 0), [0, 2]])
    ((1, 0), (0, 2))
    """
    items = list(heads)
    if len(items) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in items):
        items = [tuple(items)]
    out: list[tuple[int, int]] = []
    for item in items:
        pair = tuple(item) if isinstance(item, (tuple, list)) else None
        if pair is None or len(pair) != 2 or not all(isinstance(x, int) for x in pair):
            raise ValueError(f"a head is a (layer, head) pair of ints, got {item!r}")
        if pair[0] < 0 or pair[1] < 0:
            raise ValueError(f"head indices must be non-negative, got {pair}")
        if pair not in out:
            out.append(pair)  # type: ignore[arg-type]
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class HeadSite:
    """Where to intervene: a set of heads, at all positions or at a ``[batch, pos]`` mask.

    Args:
        heads: ``(layer, head)`` pairs (a single pair is accepted).
        positions: ``None`` for every position, or a boolean ``[batch, pos]`` mask in the
            padded coordinates of the batch the hooks will run on.
    """

    heads: tuple[tuple[int, int], ...]
    positions: Bool[Tensor, "batch pos"] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "heads", normalize_heads(self.heads))
        if not self.heads:
            raise ValueError("a HeadSite needs at least one head")
        if self.positions is not None and (
            self.positions.dtype != torch.bool or self.positions.ndim != 2
        ):
            raise ValueError(
                f"positions must be a bool [batch, pos] mask, got {self.positions.dtype} "
                f"of shape {tuple(self.positions.shape)}"
            )

    @property
    def layers(self) -> tuple[int, ...]:
        """The layers that hold at least one of the heads, ascending."""
        return tuple(sorted({layer for layer, _ in self.heads}))

    def mask(self, layer: int, n_heads: int) -> Bool[Tensor, "batch pos head_index"]:
        """``True`` where head ``h`` of ``layer`` is replaced (``[1, 1, head]`` if no mask)."""
        chosen = [h for l_, h in self.heads if l_ == layer]
        if any(h >= n_heads for h in chosen):
            raise ValueError(
                f"layer {layer}: head index in {chosen} out of range for {n_heads} heads"
            )
        device = self.positions.device if self.positions is not None else None
        head_mask = torch.zeros(n_heads, dtype=torch.bool, device=device)
        head_mask[chosen] = True
        if self.positions is None:
            return head_mask[None, None, :]
        return self.positions[:, :, None] & head_mask[None, None, :]


@dataclass(frozen=True)
class ZeroValue:
    """Replace ``z`` by zero."""

    kind: ClassVar[str] = "zero"

    def value(self, layer: int, z: Float[Tensor, "batch pos head_index d_head"]) -> Tensor:
        """The replacement for ``z`` of ``layer``, broadcastable to ``z``."""
        return torch.zeros((), dtype=z.dtype, device=z.device)


@dataclass(frozen=True, kw_only=True)
class MeanValue:
    """Replace ``z`` by a fixed per-head mean ``means[layer, head]`` (see ``mean_head_z``)."""

    means: Float[Tensor, "layer head_index d_head"]
    kind: ClassVar[str] = "mean"

    def __post_init__(self) -> None:
        if self.means.ndim != 3:
            raise ValueError(
                f"means must be [layer, head, d_head], got shape {tuple(self.means.shape)}"
            )

    def value(self, layer: int, z: Float[Tensor, "batch pos head_index d_head"]) -> Tensor:
        if self.means.shape[1:] != z.shape[2:]:
            raise ValueError(
                f"means[{layer}] has shape {tuple(self.means.shape[1:])}, "
                f"hook_z has [head, d_head] = {tuple(z.shape[2:])}"
            )
        return self.means[layer].to(device=z.device, dtype=z.dtype)


@dataclass(frozen=True, kw_only=True)
class ResampleValue:
    """Replace ``z`` by a donor's ``z``: ``donor_z[layer]`` is ``[batch, pos, head, d_head]``.

    The donor activations must already be aligned with the batch (row ``b`` holds the
    donor of row ``b`` at the same positions); ``ablate_heads`` builds them.
    """

    donor_z: Mapping[int, Float[Tensor, "batch pos head_index d_head"]]
    kind: ClassVar[str] = "resample"

    def value(self, layer: int, z: Float[Tensor, "batch pos head_index d_head"]) -> Tensor:
        if layer not in self.donor_z:
            raise ValueError(f"no donor activations for layer {layer}")
        donor = self.donor_z[layer]
        if donor.shape != z.shape:
            raise ValueError(
                f"donor z of layer {layer} has shape {tuple(donor.shape)}, "
                f"hook_z has {tuple(z.shape)}"
            )
        return donor.to(device=z.device, dtype=z.dtype)


#: Replacement kinds by name.
KINDS: dict[str, type] = {"zero": ZeroValue, "mean": MeanValue, "resample": ResampleValue}


def make_value(
    kind: str,
    *,
    means: Tensor | None = None,
    donor_z: Mapping[int, Tensor] | None = None,
) -> ZeroValue | MeanValue | ResampleValue:
    """Build the replacement value of ``kind`` (``"zero"``, ``"mean"``, ``"resample"``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown ablation kind {kind!r}; choose one of {sorted(KINDS)}")
    if kind == "mean":
        if means is None:
            raise ValueError("kind='mean' needs means=[layer, head, d_head] (see mean_head_z)")
        return MeanValue(means=means)
    if kind == "resample":
        if donor_z is None:
            raise ValueError("kind='resample' needs donor_z={layer: [batch, pos, head, d_head]}")
        return ResampleValue(donor_z=donor_z)
    return ZeroValue()
