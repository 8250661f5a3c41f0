"""Activation patching: many cells per forward, equal to TransformerLens's patching.

Semantics (METHODS.md, "Activation patching"), the same as
``transformer_lens.patching.get_act_patch_*``: run the *corrupted* input, overwrite one
activation cell (a head's ``hook_z`` at all positions or at one position, or the residual
stream / attention output / MLP output at one position) with its value on the *clean*
input, and apply ``metric`` to the logits. ``effects[cell] = metric(patched logits)``;
subtract ``corrupted_metric`` (or use :attr:`PatchingResult.change`) for the change.

Cost. TransformerLens runs one full forward and one host sync per cell. Here

* the clean activations and the corrupted run's ``hook_resid_pre`` of every layer are
  cached once (``names_filter``), and each layer's cells start at that layer with
  ``model(resid, start_at_layer=layer)``: layers before the patched one are not recomputed;
* ``C`` cells run in one forward as ``C`` patched copies of the batch stacked along the
  batch axis; the metric is applied per copy (``torch.func.vmap(metric)`` when the metric
  allows it, else a loop over copies that never calls ``.item()``);
* in a causal model nothing at the positions before the first token where clean and
  corrupted differ can change: cells that only patch there are not run (their effect is
  the corrupted metric), and the logits there are copied from the corrupted run instead
  of being recomputed (this matters with large vocabularies);
* values stay on the device until one transfer at the end.

The engine is :func:`~idiomlens.interventions.patching_runner.run_cells`.

>>> import torch, idiomlens
>>> model = idiomlens.tiny_model(n_layers=2, n_heads=4)
>>> clean, corrupted = torch.tensor([[0, 5, 6, 7]]), torch.tensor([[0, 5, 9, 7]])
>>> metric = lambda logits: logits[:, -1, 3].mean()
>>> idiomlens.patch_heads(model, clean, corrupted, metric).effects.shape
torch.Size([2, 4])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from ..engine import corpus_hash, run_meta
from ..models.sites import attn_out_hook, mlp_out_hook, resid_pre_hook, z_hook
from .patching_result import PatchingResult
from .patching_runner import Metric, patch_activation, run_cells

__all__ = [
    "PatchingResult",
    "patch",
    "patch_heads",
    "patch_resid_pre",
    "patch_attn_out",
    "patch_mlp_out",
    "patch_activation",
    "cell_masks",
    "PATCH_KINDS",
]


@dataclass(frozen=True)
class PatchKind:
    """Where a patching kind writes: a hook per layer, cells per head and/or position."""

    hook: Callable[[int], str]
    per_head: bool
    by_position: bool

    @property
    def axes(self) -> tuple[str, ...]:
        return (
            ("layer",)
            + (("pos",) if self.by_position else ())
            + (("head",) if self.per_head else ())
        )


#: Registry of patching kinds; ``effects`` has the axes ``PATCH_KINDS[kind].axes``.
PATCH_KINDS: dict[str, PatchKind] = {
    "head_all_pos": PatchKind(z_hook, per_head=True, by_position=False),
    "head_by_pos": PatchKind(z_hook, per_head=True, by_position=True),
    "resid_pre": PatchKind(resid_pre_hook, per_head=False, by_position=True),
    "attn_out": PatchKind(attn_out_hook, per_head=False, by_position=True),
    "mlp_out": PatchKind(mlp_out_hook, per_head=False, by_position=True),
}


def get_kind(kind: str) -> PatchKind:
    """Look ``kind`` up in :data:`PATCH_KINDS` with an error listing the known kinds."""
    if kind not in PATCH_KINDS:
        raise ValueError(f"unknown patching kind {kind!r}; known: {sorted(PATCH_KINDS)}")
    return PATCH_KINDS[kind]


# --------------------------------------------------------------------------- pure core


def cell_masks(kind: str, n_pos: int, n_heads: int) -> Bool[Tensor, "cell pos unit"]:
    """One boolean mask per cell of one layer, in the order of ``effects[layer]``.

    ``unit`` is the head axis for head kinds and has size 1 otherwise. Cells are ordered
    like TransformerLens's index frame: head (all-pos), pos then head (by-pos), pos.

    >>> cell_masks("head_by_pos", n_pos=2, n_heads=2).int().tolist()[1]
    [[0, 1], [0, 0]]
    """
    spec = get_kind(kind)
    n_units = n_heads if spec.per_head else 1
    grid = [n_pos] if spec.by_position else []
    grid += [n_units] if spec.per_head else []
    cells = torch.cartesian_prod(*[torch.arange(n) for n in grid]).reshape(-1, len(grid))
    mask = torch.ones(cells.shape[0], n_pos, n_units, dtype=torch.bool)
    col = 0
    if spec.by_position:  # cell c patches position cells[c, 0] only
        mask &= torch.arange(n_pos)[None, :, None] == cells[:, col, None, None]
        col += 1
    if spec.per_head:  # cell c patches head cells[c, col] only
        mask &= torch.arange(n_units)[None, None, :] == cells[:, col, None, None]
    return mask


def check_pair(
    clean_tokens: Tensor, corrupted_tokens: Tensor
) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
    """Validate clean/corrupted token tensors (1-D is read as a batch of one)."""
    clean = clean_tokens[None] if clean_tokens.ndim == 1 else clean_tokens
    corrupted = corrupted_tokens[None] if corrupted_tokens.ndim == 1 else corrupted_tokens
    if clean.ndim != 2 or clean.shape != corrupted.shape:
        raise ValueError(
            "clean and corrupted tokens must have the same [batch, pos] shape (patching needs "
            f"length-matched pairs; see make_patching_pairs), got clean {tuple(clean_tokens.shape)}"
            f" and corrupted {tuple(corrupted_tokens.shape)}"
        )
    if clean.is_floating_point() or corrupted.is_floating_point():
        raise TypeError("clean and corrupted must be integer token ids, not floats")
    return clean, corrupted


# --------------------------------------------------------------------------- public API


def patch(
    model: Any,
    clean_tokens: Int[Tensor, "*batch pos"],
    corrupted_tokens: Int[Tensor, "*batch pos"],
    metric: Metric,
    *,
    kind: str = "head_all_pos",
    layers: list[int] | None = None,
    cells_per_forward: int | None = None,
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    metric_positions: Sequence[int] | None = None,
    ids: tuple[str, ...] = (),
    progress: bool = False,
) -> PatchingResult:
    """Activation patching of every cell of one kind; ``effects`` has ``PATCH_KINDS[kind].axes``.

    Args:
        model: a ``HookedTransformer``.
        clean_tokens, corrupted_tokens: ``[batch, pos]`` token ids of equal shape (a
            1-D tensor is a batch of one). The patch applies to every row at once.
        metric: ``logits [batch, pos, d_vocab] -> scalar tensor``, as in TransformerLens.
            It is called on the logits of a whole (patched) corrupted batch.
        kind: ``"head_all_pos"`` ``[layer, head]``, ``"head_by_pos"`` ``[layer, pos, head]``,
            ``"resid_pre"`` / ``"attn_out"`` / ``"mlp_out"`` ``[layer, pos]``.
        layers: patch only these layers (others are ``nan``); default all.
        cells_per_forward: patched copies per forward; default keeps the stacked logits
            under ``patching_runner.DEFAULT_FORWARD_ELEMENTS`` elements.
        attention_mask: for left-padded input (``Batch.forward_kwargs()``); the same mask
            serves both runs.
        metric_positions: the positions whose logits ``metric`` reads (e.g. ``[-1]``), if
            it reads only some: the others are then not computed (``nan``), which saves the
            unembedding there (the bulk of the cost with a large vocabulary). Checked once
            on the corrupted run: the metric must not change when the others are ``nan``.
        ids: pair ids kept on the result.
        progress: show a progress bar over forwards.

    Returns:
        :class:`PatchingResult`; ``effects`` equals the matching
        ``transformer_lens.patching.get_act_patch_*`` output.
    """
    spec = get_kind(kind)
    clean, corrupted = check_pair(clean_tokens, corrupted_tokens)
    if model.cfg.positional_embedding_type == "shortformer":
        raise NotImplementedError("patching does not support shortformer positional embeddings")
    n_layers, n_pos, n_heads = model.cfg.n_layers, corrupted.shape[1], model.cfg.n_heads
    layers = list(range(n_layers)) if layers is None else sorted(set(layers))
    if not all(0 <= layer < n_layers for layer in layers):
        raise ValueError(f"layers {layers} outside the model's 0..{n_layers - 1}")
    masks = cell_masks(kind, n_pos, n_heads)
    values, baselines = run_cells(
        model,
        clean,
        corrupted,
        metric,
        hook=spec.hook,
        masks=dict.fromkeys(layers, masks),
        cells_per_forward=cells_per_forward,
        attention_mask=attention_mask,
        metric_positions=metric_positions,
        progress=progress,
    )
    grid = [n_pos] if spec.by_position else []
    grid += [n_heads] if spec.per_head else []
    effects = torch.full((n_layers, *grid), float("nan"), device=baselines.device)
    for layer, v in values.items():
        effects[layer] = v.reshape(grid)
    clean_metric, corrupted_metric = baselines.tolist()  # host transfers only at the end
    return PatchingResult(
        effects=effects.cpu(),
        kind=kind,
        axes=spec.axes,
        clean_metric=clean_metric,
        corrupted_metric=corrupted_metric,
        method="exact",
        ids=tuple(ids),
        meta=run_meta(
            model,
            clean,
            corrupted_hash=corpus_hash(corrupted),
            kind=kind,
            method="exact",
            layers=layers,
            metric=getattr(metric, "__qualname__", type(metric).__name__),
            metric_positions=None if metric_positions is None else list(metric_positions),
        ),
    )


def patch_heads(
    model: Any,
    clean_tokens: Int[Tensor, "*batch pos"],
    corrupted_tokens: Int[Tensor, "*batch pos"],
    metric: Metric,
    *,
    by_position: bool = False,
    **kwargs: Any,
) -> PatchingResult:
    """Patch each head's ``hook_z`` from clean into corrupted: ``[layer, head]`` or ``[layer, pos, head]``.

    Equal to ``get_act_patch_attn_head_out_all_pos`` (``by_position=False``) /
    ``get_act_patch_attn_head_out_by_pos`` (``True``). Other keywords as in :func:`patch`.
    """
    kind = "head_by_pos" if by_position else "head_all_pos"
    return patch(model, clean_tokens, corrupted_tokens, metric, kind=kind, **kwargs)


def patch_resid_pre(
    model: Any, clean_tokens: Tensor, corrupted_tokens: Tensor, metric: Metric, **kwargs: Any
) -> PatchingResult:
    """Patch ``blocks.{l}.hook_resid_pre`` per position: ``[layer, pos]`` (``get_act_patch_resid_pre``)."""
    return patch(model, clean_tokens, corrupted_tokens, metric, kind="resid_pre", **kwargs)


def patch_attn_out(
    model: Any, clean_tokens: Tensor, corrupted_tokens: Tensor, metric: Metric, **kwargs: Any
) -> PatchingResult:
    """Patch ``blocks.{l}.hook_attn_out`` per position: ``[layer, pos]`` (``get_act_patch_attn_out``)."""
    return patch(model, clean_tokens, corrupted_tokens, metric, kind="attn_out", **kwargs)


def patch_mlp_out(
    model: Any, clean_tokens: Tensor, corrupted_tokens: Tensor, metric: Metric, **kwargs: Any
) -> PatchingResult:
    """Patch ``blocks.{l}.hook_mlp_out`` per position: ``[layer, pos]`` (``get_act_patch_mlp_out``)."""
    return patch(model, clean_tokens, corrupted_tokens, metric, kind="mlp_out", **kwargs)
