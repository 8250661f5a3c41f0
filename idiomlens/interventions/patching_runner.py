"""The model-driving side of activation patching: cached runs, stacked forwards.

:func:`run_cells` is the one engine behind every patching kind: it caches the clean
site activations and the corrupted ``hook_resid_pre`` once, skips cells that only touch
the shared token prefix, and runs the other cells ``cells_per_forward`` at a time as
patched copies of the batch, starting at the patched layer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..engine import capture, forward
from ..models.sites import resid_pre_hook
from ..models.unembed import final_norm, unembed

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
    """Logits buffers reused across forwards, one per shape (allocating ~100 MB per
    forward costs as much as the unembedding on CPU). With ``fill`` a new buffer starts
    filled with it, so positions that are never written keep it (``nan``: not computed)."""

    def __init__(self, fill: float | None = None) -> None:
        self.fill = fill
        self.buffers: dict[tuple[int, ...], Tensor] = {}

    def take(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """A contiguous buffer of ``shape`` (dtype and device of ``like``)."""
        buffer = self.buffers.get(shape)
        if buffer is None or (buffer.dtype, buffer.device) != (like.dtype, like.device):
            buffer = like.new_empty(shape) if self.fill is None else like.new_full(shape, self.fill)
            self.buffers[shape] = buffer
        return buffer


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


def metric_positions_checked(
    metric: Metric, logits: Float[Tensor, "batch pos d_vocab"], positions: Sequence[int] | None
) -> list[int]:
    """The sorted positions whose logits ``metric`` reads (all when ``positions`` is None).

    Declared positions are verified once: ``metric`` must give the same value when every
    other position's logits are ``nan``.
    """
    n_pos = logits.shape[1]
    if positions is None:
        return list(range(n_pos))
    if not all(-n_pos <= p < n_pos for p in positions) or not positions:
        raise ValueError(f"metric_positions {list(positions)} are not positions of {n_pos}")
    wanted = sorted({p % n_pos for p in positions})
    probe = torch.full_like(logits, float("nan"))
    probe[:, wanted] = logits[:, wanted]
    if not torch.allclose(metric(probe), metric(logits), rtol=0, atol=0):
        raise ValueError(
            f"the metric reads logits outside metric_positions={list(positions)}: with the "
            "other positions set to nan its value changes"
        )
    return wanted


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
    metric_positions: Sequence[int] | None = None,
    progress: bool = False,
) -> tuple[dict[int, Float[Tensor, " cell"]], Float[Tensor, "2"]]:
    """Patch every cell of ``masks[layer]`` at ``hook(layer)``; the core of all kinds.

    Cells that only touch the shared token prefix are no-ops (their value is the
    corrupted metric) and are not run; the logits of the prefix are the corrupted run's.
    With ``metric_positions`` only those positions' logits are computed (others: ``nan``).
    Returns ``({layer: metric per cell}, [clean_metric, corrupted_metric])`` on the device.
    """
    layers = sorted(masks)
    kwargs = forward_kwargs(model, corrupted, attention_mask)
    names = {hook(layer) for layer in layers}
    resid_names = {resid_pre_hook(layer) for layer in layers}
    causal = getattr(model.cfg, "attention_dir", "causal") == "causal"
    prefix = shared_prefix(clean, corrupted) if causal else 0
    with torch.no_grad():
        clean_kwargs = forward_kwargs(model, clean, attention_mask)
        clean_logits, clean_cache = capture(
            model, clean, sorted(names), logits=True, **clean_kwargs
        )
        corrupt_logits, corrupt_cache = capture(
            model, corrupted, sorted(resid_names), logits=True, **kwargs
        )
        baselines = torch.stack([metric(clean_logits), metric(corrupt_logits)]).reshape(2)
        wanted = metric_positions_checked(metric, corrupt_logits, metric_positions)
        apply_metric = MetricApplier(metric)
        n_rows, n_pos = corrupted.shape
        per_forward = cells_per_forward or default_cells_per_forward(model, n_rows, n_pos)
        out = {layer: baselines[1].repeat(masks[layer].shape[0]) for layer in layers}
        workspace = Workspace(fill=None if metric_positions is None else float("nan"))
        chunks = _plan(masks, prefix, wanted[-1], per_forward)
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
                (corrupt_logits, start, wanted),
                workspace,
            )
    return out, baselines


def _plan(
    masks: Mapping[int, Tensor], prefix: int, last_read: int, per_forward: int
) -> list[tuple[int, Tensor, int]]:
    """Chunks ``(layer, cell indices, start)``; ``start`` = first position whose logits can
    change. A cell runs only if it patches at or after ``prefix`` and no later than the
    last position the metric reads."""
    chunks = []
    for layer in sorted(masks):
        touched = masks[layer].any(-1)  # [cell, pos]: positions each cell patches
        first = touched.int().argmax(-1).clamp(min=prefix)  # first position that can change
        live = (touched[:, prefix:].any(-1) & (first <= last_read)).nonzero()[:, 0]
        chunks += [
            (layer, i, int(first[i].min())) for i in torch.split(live, per_forward) if len(i)
        ]
    return chunks


def _forward_chunk(
    model: Any,
    layer: int,
    resid: Tensor,
    clean_act: Tensor,
    mask: Tensor,
    hook: Callable[[int], str],
    apply_metric: MetricApplier,
    kwargs: dict[str, Any],
    corrupted_logits: tuple[Tensor, int, list[int]],
    workspace: Workspace,
) -> Tensor:
    """One forward from ``layer`` for ``mask.shape[0]`` cells; see :func:`_head`."""
    n_cells = mask.shape[0]
    mask = mask.to(resid.device)

    def patch_hook(act: Tensor, hook: Any) -> Tensor:
        return patch_activation(act, clean_act, mask)

    # [batch, pos, d_model] -> [cell*batch, pos, d_model], copy-major
    stacked = einops.repeat(resid, "b p d -> (c b) p d", c=n_cells)
    stacked_kwargs = {k: einops.repeat(v, "b p -> (c b) p", c=n_cells) for k, v in kwargs.items()}
    final = forward(
        model,
        stacked,
        [(hook(layer), patch_hook)],
        logits=True,  # runs to stop_at_layer: the final residual stream
        start_at_layer=layer,
        stop_at_layer=model.cfg.n_layers,
        **stacked_kwargs,
    )
    logits = _head(model, final, *corrupted_logits, n_cells, workspace)
    return apply_metric(logits, n_cells).clone()  # the value must not alias the workspace


def _head(
    model: Any,
    final: Float[Tensor, "cell_batch pos d_model"],
    corrupted_logits: Float[Tensor, "batch pos d_vocab"],
    start: int,
    wanted: list[int],
    n_cells: int,
    workspace: Workspace,
) -> Float[Tensor, "cell_batch pos d_vocab"]:
    """Logits of the stacked runs at the ``wanted`` positions: the corrupted run's before
    ``start`` (identical there), the model's head (final norm, ``W_U``, ``b_U``, soft-cap)
    from ``start`` on. Unwanted positions are never written.

    The logits go position-major into a reused buffer (no concatenation, no copy of
    ``W_U``, no allocation per forward); returned as a ``[cell*batch, pos, d_vocab]`` view,
    valid until the next call.
    """
    n_rows, n_pos, _ = final.shape
    buffer = workspace.take((n_pos, n_rows, model.cfg.d_vocab_out), final)
    for a, b in _runs(wanted, split_at=start):
        if b <= start:  # [p, cell*batch, d_vocab] <- [batch, p, d_vocab], broadcast over cells
            buffer[a:b].view(b - a, n_cells, -1, buffer.shape[-1]).copy_(
                einops.rearrange(corrupted_logits[:, a:b], "b p v -> p 1 b v")
            )
            continue
        resid = einops.rearrange(final[:, a:b], "cb p d -> p cb d")
        unembed(model, final_norm(model, resid), out=buffer[a:b])
    return einops.rearrange(buffer, "p cb v -> cb p v")


def _runs(positions: list[int], split_at: int) -> list[tuple[int, int]]:
    """Maximal ``[a, b)`` runs of consecutive sorted ``positions``, also split at ``split_at``.

    >>> _runs([0, 1, 2, 5, 6], split_at=2)
    [(0, 2), (2, 3), (5, 7)]
    """
    runs: list[tuple[int, int]] = []
    for p in positions:
        if runs and runs[-1][1] == p and p != split_at:
            runs[-1] = (runs[-1][0], p + 1)
        else:
            runs.append((p, p + 1))
    return runs


def _progress(items: list, enabled: bool) -> Any:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc="patching", unit="forward")
