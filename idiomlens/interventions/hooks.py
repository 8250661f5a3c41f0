"""Compile intervention specs into TransformerLens forward hooks on ``hook_z``.

A hook replaces ``z[b, p, h]`` by the value's ``z'[b, p, h]`` wherever the layer's mask
``[batch | 1, pos | 1, head]`` is ``True`` and leaves every other entry untouched, with
one ``torch.where`` per layer: no per-head or per-example Python loops.

>>> import torch
>>> from idiomlens.models import tiny_model
>>> model = tiny_model(n_layers=1)
>>> tokens = torch.tensor([[0, 5, 6, 7]])
>>> hooks = ablation_hooks([(0, 1)], kind="zero")
>>> [name for name, _ in hooks]
['blocks.0.attn.hook_z']
>>> model.run_with_hooks(tokens, fwd_hooks=hooks).shape
torch.Size([1, 4, 300])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from ..models.sites import z_hook
from .specs import HeadSite, MeanValue, ResampleValue, ZeroValue, make_value, normalize_heads

__all__ = ["ablation_hooks", "replacement_hooks", "compile_site"]

Hook = tuple[str, Callable[..., Tensor]]
Value = ZeroValue | MeanValue | ResampleValue


def _replace_hook(
    layer: int, mask: Tensor | Callable[[int], Tensor], value: Value
) -> Callable[..., Tensor]:
    def hook(z: Float[Tensor, "batch pos head_index d_head"], hook: Any) -> Tensor:
        # ``mask`` may be built lazily from the real head count (HeadSite.mask)
        m = (mask if isinstance(mask, Tensor) else mask(z.shape[2])).to(z.device)
        if (
            m.ndim != 3
            or m.shape[2] != z.shape[2]
            or any(m.shape[i] not in (1, z.shape[i]) for i in (0, 1))
        ):
            raise ValueError(
                f"layer {layer}: ablation mask of shape {tuple(m.shape)} does not fit hook_z "
                f"[batch, pos, head, d_head] = {tuple(z.shape)}"
            )
        # [batch|1, pos|1, head] -> [..., 1] broadcast over d_head
        return torch.where(m[..., None], value.value(layer, z), z)

    return hook


def replacement_hooks(
    masks: Mapping[int, Bool[Tensor, "batch pos head_index"]], value: Value
) -> list[Hook]:
    """One ``hook_z`` hook per layer of ``masks`` that writes ``value`` where the mask is set.

    Args:
        masks: ``layer -> [batch | 1, pos | 1, head]`` boolean masks.
        value: a replacement value from :mod:`idiomlens.interventions.specs`.

    Returns:
        ``[(hook_name, fn), ...]`` in layer order, for ``model.run_with_hooks(fwd_hooks=...)``
        or ``with model.hooks(fwd_hooks=...)``.
    """
    return [(z_hook(layer), _replace_hook(layer, masks[layer], value)) for layer in sorted(masks)]


def compile_site(site: HeadSite, value: Value) -> list[Hook]:
    """Compile a :class:`HeadSite` and a value into hooks.

    Masks are built when a hook runs, from the model's real head count, so an
    out-of-range head index raises there with the layer and head named.
    """
    return [
        (z_hook(layer), _replace_hook(layer, partial(site.mask, layer), value))
        for layer in site.layers
    ]


def ablation_hooks(
    heads: Iterable[Any] | tuple[int, int],
    kind: str = "zero",
    *,
    positions: Bool[Tensor, "batch pos"] | None = None,
    means: Float[Tensor, "layer head_index d_head"] | None = None,
    donor_z: Mapping[int, Float[Tensor, "batch pos head_index d_head"]] | None = None,
    n_heads: int | None = None,
) -> list[Hook]:
    """Forward hooks that ablate ``heads`` (their ``hook_z``) for ``model.run_with_hooks``.

    Args:
        heads: ``(layer, head)`` pairs, or one pair.
        kind: ``"zero"`` (``z = 0``), ``"mean"`` (``z = means[layer, head]``, e.g. from
            :func:`~idiomlens.interventions.ablation.mean_head_z`) or ``"resample"``
            (``z = donor_z[layer][b, p, head]``, activations of donor inputs aligned with
            the batch, same positions).
        positions: ``None`` for every position, or a boolean ``[batch, pos]`` mask of the
            positions to ablate (padded coordinates of the batch you run).
        means: ``[layer, head, d_head]`` for ``kind="mean"``.
        donor_z: ``{layer: [batch, pos, head, d_head]}`` for ``kind="resample"``.
        n_heads: the model's head count, to reject out-of-range heads here rather than
            when the hook runs (``model.cfg.n_heads``).

    Returns:
        ``[(hook_name, fn), ...]``, one per ablated layer.

    >>> import torch
    >>> hooks = ablation_hooks([(0, 1), (1, 0)], positions=torch.tensor([[False, True]]))
    >>> [name for name, _ in hooks]
    ['blocks.0.attn.hook_z', 'blocks.1.attn.hook_z']
    """
    value = make_value(kind, means=means, donor_z=donor_z)
    site = HeadSite(heads=normalize_heads(heads), positions=positions)
    if n_heads is not None:
        for layer in site.layers:
            site.mask(layer, n_heads)  # validates head indices now
    return compile_site(site, value)
