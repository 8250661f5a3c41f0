"""The model-driving side of activation patching: cached runs, stacked forwards.

:func:`run_cells` is the one engine behind every patching kind: it caches the clean
site activations and the corrupted ``hook_resid_pre`` once, skips cells that only touch
the shared token prefix, and runs the other cells ``cells_per_forward`` at a time as
patched copies of the batch, starting at the patched layer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..models.sites import resid_pre_hook

__all__ = [
    "Metric",
    "patch_activation",
    "run_cells",
    "forward_kwargs",
    "shared_prefix",
    "MetricApplier",
]

log = logging.getLogger(__name__)

#: Elements of the stacked logits (cells x batch x pos x d_vocab) one forward may hold
#: (128 MiB in float32).
DEFAULT_FORWARD_ELEMENTS = 2**25

Metric = Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""]]


def patch_activation(
    corrupted: Float[Tensor, "cell_batch pos *rest"],
    clean: Float[Tensor, "batch pos *rest"],
    mask: Bool[Tensor, "cell pos unit"],
) -> Float[Tensor, "cell_batch pos *rest"]:
    """Overwrite cell ``c``'s masked entries of copy ``c`` of the batch with ``clean``.

    ``corrupted`` holds ``cell`` copies of the batch stacked along its first axis
    (copy-major: rows ``c * batch .. (c + 1) * batch - 1`` belong to cell ``c``).
    ``rest`` is ``(head_index, d_head)`` for ``hook_z`` (``unit`` = head) or
    ``(d_model,)`` for residual-like sites (``unit`` = 1).

    >>> out = patch_activation(torch.zeros(2, 3, 1), torch.ones(1, 3, 1),
    ...                        torch.eye(2, 3, dtype=torch.bool)[:, :, None])
    >>> out[:, :, 0].tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    n_cells, n_units = mask.shape[0], mask.shape[2]
    shape = corrupted.shape
    # [cell*batch, pos, *rest] -> [cell, batch, pos, unit, rest_flat]
    stacked = corrupted.reshape(n_cells, -1, shape[1], n_units, math.prod(shape[2:]) // n_units)
    source = clean.reshape(1, *stacked.shape[1:])
    patched = torch.where(mask[:, None, :, :, None], source, stacked)
    return patched.reshape(shape)


def forward_kwargs(model: Any, tokens: Tensor, attention_mask: Tensor | None) -> dict[str, Any]:
    """The ``attention_mask`` a plain ``model(tokens)`` would use, made explicit.

    ``start_at_layer`` forwards cannot infer the mask, so it is passed to every forward;
    for right padding (the default) it is ``None`` as in ``model(tokens)``.
    """
    tok = getattr(model, "tokenizer", None)
    if attention_mask is None and tok is not None and tok.padding_side == "left":
        from transformer_lens.utilities import get_attention_mask

        attention_mask = get_attention_mask(tok, tokens, model.cfg.default_prepend_bos)
    return {} if attention_mask is None else {"attention_mask": attention_mask.to(tokens.device)}


class MetricApplier:
    """Apply ``metric`` to each of ``C`` stacked copies of the batch, on the device.

    Tries ``torch.func.vmap(metric)`` once; if the metric cannot be vmapped (``.item()``,
    data-dependent control flow, ...) it falls back to a loop over copies for good.
    """

    def __init__(self, metric: Metric):
        self.metric = metric
        self.use_vmap = True

    def __call__(self, logits: Float[Tensor, "cell_batch pos d_vocab"], n_cells: int) -> Tensor:
        per_cell = logits.reshape(n_cells, -1, *logits.shape[1:])
        if self.use_vmap:
            try:
                return torch.func.vmap(self.metric)(per_cell).reshape(n_cells)
            except Exception as err:  # noqa: BLE001 - any vmap failure means "loop instead"
                log.debug("metric is not vmappable (%s); applying it per cell", err)
                self.use_vmap = False
        return torch.stack([torch.as_tensor(self.metric(x)).reshape(()) for x in per_cell])


class Workspace:
    """One flat tensor reused for the logits of every forward (allocating ~100 MB per
    forward costs as much as the unembedding on CPU)."""

    def __init__(self) -> None:
        self.flat: Tensor | None = None

    def take(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """A contiguous ``shape`` view of the workspace (grown when needed); old views die."""
        numel = math.prod(shape)
        flat = self.flat
        if (
            flat is None
            or flat.numel() < numel
            or (flat.dtype, flat.device) != (like.dtype, like.device)
        ):
            flat = self.flat = like.new_empty(numel)
        return flat[:numel].view(shape)


def default_cells_per_forward(model: Any, n_rows: int, n_pos: int) -> int:
    """Cells per forward so that the stacked logits stay under ``DEFAULT_FORWARD_ELEMENTS``."""
    width = max(model.cfg.d_vocab_out, model.cfg.d_mlp or 0, model.cfg.d_model)
    return max(1, DEFAULT_FORWARD_ELEMENTS // (n_rows * n_pos * width))


def shared_prefix(clean: Int[Tensor, "batch pos"], corrupted: Int[Tensor, "batch pos"]) -> int:
    """Number of leading positions where clean and corrupted tokens agree in every row.

    In a causal model every activation at these positions is the same on both runs, so
    patching them changes nothing, and no patch changes the logits before them.
    """
    differs = (clean != corrupted).any(0)
    return int(differs.int().argmax()) if bool(differs.any()) else clean.shape[1]


def run_cells(
    model: Any,
    clean: Int[Tensor, "batch pos"],
    corrupted: Int[Tensor, "batch pos"],
    metric: Metric,
    *,
    hook: Callable[[int], str],
    masks: Mapping[int, Bool[Tensor, "cell pos unit"]],
    cells_per_forward: int | None = None,
    attention_mask: Tensor | None = None,
    progress: bool = False,
) -> tuple[dict[int, Float[Tensor, " cell"]], Float[Tensor, "2"]]:
    """Patch every cell of ``masks[layer]`` at ``hook(layer)``; the core of all kinds.

    Cells that only touch the shared token prefix are no-ops (their value is the
    corrupted metric) and are not run; the logits of the prefix are the corrupted run's.
    Returns ``({layer: metric per cell}, [clean_metric, corrupted_metric])`` on the device.
    """
    layers = sorted(masks)
    kwargs = forward_kwargs(model, corrupted, attention_mask)
    names = {hook(layer) for layer in layers}
    resid_names = {resid_pre_hook(layer) for layer in layers}
    causal = getattr(model.cfg, "attention_dir", "causal") == "causal"
    prefix = shared_prefix(clean, corrupted) if causal else 0
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(
            clean, names_filter=lambda n: n in names, **forward_kwargs(model, clean, attention_mask)
        )
        corrupt_logits, corrupt_cache = model.run_with_cache(
            corrupted, names_filter=lambda n: n in resid_names, **kwargs
        )
        baselines = torch.stack([metric(clean_logits), metric(corrupt_logits)]).reshape(2)
        apply_metric = MetricApplier(metric)
        n_rows, n_pos = corrupted.shape
        per_forward = cells_per_forward or default_cells_per_forward(model, n_rows, n_pos)
        out = {layer: baselines[1].repeat(masks[layer].shape[0]) for layer in layers}
        workspace = Workspace()
        chunks = []
        for layer in layers:
            touched = masks[layer].any(-1)  # [cell, pos]: positions each cell patches
            live = touched[:, prefix:].any(-1).nonzero()[:, 0]
            first = touched.int().argmax(-1).clamp(min=prefix)  # first position that can change
            chunks += [
                (layer, i, int(first[i].min())) for i in torch.split(live, per_forward) if len(i)
            ]
        for layer, idx, start in _progress(chunks, progress):
            out[layer][idx.to(out[layer].device)] = _forward_chunk(
                model,
                layer,
                corrupt_cache[resid_pre_hook(layer)],
                clean_cache[hook(layer)],
                masks[layer][idx],
                hook,
                apply_metric,
                kwargs,
                corrupt_logits[:, :start],
                workspace,
            )
    return out, baselines


def _forward_chunk(
    model: Any,
    layer: int,
    resid: Tensor,
    clean_act: Tensor,
    mask: Tensor,
    hook: Callable[[int], str],
    apply_metric: MetricApplier,
    kwargs: dict[str, Any],
    head_logits: Tensor,
    workspace: Workspace,
) -> Tensor:
    """One forward from ``layer`` for ``mask.shape[0]`` cells; logits of the first
    ``head_logits.shape[1]`` positions are copied from the corrupted run, not recomputed."""
    n_cells = mask.shape[0]
    mask = mask.to(resid.device)

    def patch_hook(act: Tensor, hook: Any) -> Tensor:
        return patch_activation(act, clean_act, mask)

    # [batch, pos, d_model] -> [cell*batch, pos, d_model], copy-major
    stacked = einops.repeat(resid, "b p d -> (c b) p d", c=n_cells)
    stacked_kwargs = {k: einops.repeat(v, "b p -> (c b) p", c=n_cells) for k, v in kwargs.items()}
    with model.hooks(fwd_hooks=[(hook(layer), patch_hook)]):
        final = model(
            stacked, start_at_layer=layer, stop_at_layer=model.cfg.n_layers, **stacked_kwargs
        )
    logits = _logits_after_prefix(model, final, head_logits, n_cells, workspace)
    return apply_metric(logits, n_cells).clone()  # the value must not alias the workspace


def _logits_after_prefix(
    model: Any,
    final: Float[Tensor, "cell_batch pos d_model"],
    head_logits: Float[Tensor, "batch start d_vocab"],
    n_cells: int,
    workspace: Workspace,
) -> Float[Tensor, "cell_batch pos d_vocab"]:
    """The model's head (final norm, unembedding, soft-cap) on positions ``start:`` only;
    positions ``:start`` get ``head_logits`` (the corrupted run's, identical there).

    The logits are written position-major into one reused buffer (no concatenation, no
    copy of ``W_U``, no fresh allocation per forward) and returned as a
    ``[cell*batch, pos, d_vocab]`` view, valid until the next call.
    """
    start, (n_rows, n_pos, _) = head_logits.shape[1], final.shape
    resid = final[:, start:]
    if model.cfg.normalization_type is not None:
        resid = model.ln_final(resid)
    buffer = workspace.take((n_pos, n_rows, model.cfg.d_vocab_out), final)
    # [start, cell*batch, d_vocab] <- [batch, start, d_vocab], broadcast over cells
    if start > 0:
        buffer[:start].view(start, n_cells, -1, buffer.shape[-1]).copy_(
            einops.rearrange(head_logits, "b p v -> p 1 b v")
        )
    tail = buffer[start:]
    torch.matmul(einops.rearrange(resid, "cb p d -> p cb d"), model.W_U, out=tail)
    tail += model.b_U
    cap = model.cfg.output_logits_soft_cap
    if cap is not None and cap > 0:
        torch.tanh(tail / cap, out=tail).mul_(cap)
    return einops.rearrange(buffer, "p cb v -> cb p v")


def _progress(items: list, enabled: bool) -> Any:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc="patching", unit="forward")
