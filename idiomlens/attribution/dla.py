"""Direct logit attribution (METHODS.md, "Direct logit attribution").

The final residual stream at position ``p`` is a sum of components: ``embed``,
``pos_embed`` (standard positional embeddings only), each head's ``r_h(p) = z_h(p) @ W_O[h]``
(no ``b_O``), each MLP's output without ``b_out``, and ``bias`` (every ``b_O`` and
``b_out``). The final norm is linear once its scale ``s(p)`` (``ln_final.hook_scale``,
cached on the clean run) is frozen, so with ``u = W_U[:, t]`` (``W_U[:, t] - W_U[:, d]`` in
logit-difference mode)::

    logit_t(p) = sum_c  centre(c(p)) / s(p) . (w * u)  +  b_ln . u  +  b_U[t]

``centre`` removes the mean over ``d_model`` (LayerNorm models; RMSNorm is not centred),
``w`` and ``b_ln`` are ``ln_final``'s weight and bias (absent after ``fold_ln``), and
``b_ln . u`` is counted in ``bias``. Attribution of a component = its term of the sum, so
components + ``b_U[t]`` equal the logit exactly.

Cost: one forward per batch with ``hook_z``/``hook_mlp_out``/embeddings/scale cached; the
projection dots activations with the per-position direction (``z_h . (W_O[h] @ u)``), so
``[component, batch, pos, d_model]`` and ``z[..., None] * W_O`` are never built.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..models.sites import ln_final_scale_hook, mlp_out_hook, resid_pre_hook, z_hook

__all__ = ["component_labels", "attribute_components", "unembed_directions", "dla_forward"]

log = logging.getLogger(__name__)

_CENTRED_NORMS = ("LayerNorm", "LayerNormPre")
_SUPPORTED_NORMS = ("LayerNorm", "LayerNormPre", "RMSNorm", "RMSNormPre")


def _has_pos_embed(model: Any) -> bool:
    return model.cfg.positional_embedding_type == "standard"


def component_labels(model: Any) -> tuple[str, ...]:
    """``("embed", ["pos_embed",] "L0H0", ..., "L0_mlp", "L1H0", ..., "bias")``, residual order."""
    labels = ["embed"] + (["pos_embed"] if _has_pos_embed(model) else [])
    for layer in range(model.cfg.n_layers):
        labels += [f"L{layer}H{h}" for h in range(model.cfg.n_heads)]
        if not model.cfg.attn_only:
            labels.append(f"L{layer}_mlp")
    return tuple(labels + ["bias"])


def _final_norm(model: Any) -> str | None:
    """Class name of ``ln_final`` (``None`` without a final norm); rejects non-linear outputs."""
    cfg = model.cfg
    if getattr(cfg, "use_normalization_before_and_after", False):
        raise NotImplementedError("DLA is not exact for models with post-sublayer norms (Gemma 2)")
    if getattr(cfg, "output_logits_soft_cap", 0) and cfg.output_logits_soft_cap > 0:
        raise NotImplementedError("DLA is not exact for models with logit soft-capping")
    if cfg.normalization_type is None:
        return None
    name = type(model.ln_final).__name__
    if name not in _SUPPORTED_NORMS:
        raise NotImplementedError(f"unsupported final norm {name} for DLA")
    return name


def unembed_directions(
    model: Any,
    targets: Int[Tensor, "batch pos"],
    distractors: Int[Tensor, "batch pos"] | None = None,
) -> tuple[
    Float[Tensor, "batch pos d_model"], Float[Tensor, "batch pos"], Float[Tensor, "batch pos"]
]:
    """Per-position read-out directions ``centre(w * u)``, ``b_ln . u`` and ``b_U`` term.

    ``u = W_U[:, target]`` (minus ``W_U[:, distractor]``). Gathers only the needed columns
    of ``W_U``, so memory is ``[batch, pos, d_model]``, never ``[d_model, d_vocab]`` copies.
    Returned in float32.
    """
    norm = _final_norm(model)
    w_u = model.W_U.T  # [d_vocab, d_model] view; gather rows before casting
    u = w_u[targets].float()  # [batch, pos, d_model]
    b_u = model.b_U[targets].float()
    if distractors is not None:
        u = u - w_u[distractors].float()
        b_u = b_u - model.b_U[distractors].float()
    ln_w = getattr(model.ln_final, "w", None) if norm else None
    ln_b = getattr(model.ln_final, "b", None) if norm else None
    ln_bias_logit = (u @ ln_b.float()) if ln_b is not None else torch.zeros_like(b_u)
    if ln_w is not None:
        u = u * ln_w.float()
    if norm in _CENTRED_NORMS:
        u = u - u.mean(-1, keepdim=True)
    return u, ln_bias_logit, b_u


def attribute_components(
    dirs: Float[Tensor, "batch pos d_model"],
    scale: Float[Tensor, "batch pos 1"],
    embed: Float[Tensor, "batch pos d_model"],
    pos_embed: Float[Tensor, "batch pos d_model"] | None,
    z: Sequence[Float[Tensor, "batch pos head_index d_head"]],
    W_O: Sequence[Float[Tensor, "head_index d_head d_model"]],
    mlp_out: Sequence[Float[Tensor, "batch pos d_model"]] | None,
    bias: Float[Tensor, " d_model"],
    ln_bias_logit: Float[Tensor, "batch pos"],
) -> Float[Tensor, "batch pos component"]:
    """Pure core: each component's term of the logit at every position.

    Args:
        dirs: read-out directions ``centre(w * u)`` (see :func:`unembed_directions`); the
            centring of the component is applied to the direction instead (same dot product).
        scale: the final norm's scale ``s(p)`` (ones without a final norm).
        embed, pos_embed: embedding components (``pos_embed`` ``None`` if absent).
        z: per layer, the heads' ``hook_z``.
        W_O: per layer, the output weights.
        mlp_out: per layer, ``hook_mlp_out - b_out`` (``None`` for attention-only models).
        bias: the sum of every layer's ``b_O`` and ``b_out``.
        ln_bias_logit: ``b_ln . u``, added to the ``bias`` component.

    Returns:
        ``[batch, pos, component]`` in :func:`component_labels` order; summed over
        components plus the ``b_U`` term it is the logit (difference).
    """
    parts = [einops.einsum(embed.float(), dirs, "b p d, b p d -> b p")[..., None]]
    if pos_embed is not None:
        parts.append(einops.einsum(pos_embed.float(), dirs, "b p d, b p d -> b p")[..., None])
    for layer, z_l in enumerate(z):
        # project the direction back through W_O: [batch, pos, head, d_head], the size of z
        back = einops.einsum(W_O[layer].float(), dirs, "h e d, b p d -> b p h e")
        parts.append(einops.einsum(z_l.float(), back, "b p h e, b p h e -> b p h"))
        if mlp_out is not None:
            parts.append(
                einops.einsum(mlp_out[layer].float(), dirs, "b p d, b p d -> b p")[..., None]
            )
    parts.append((dirs @ bias.float())[..., None])
    attr = torch.cat(parts, dim=-1) / scale.float()
    attr[..., -1] += ln_bias_logit
    return attr


def _cache_names(model: Any, norm: str | None) -> list[str]:
    names = [resid_pre_hook(0)] + (["hook_pos_embed"] if _has_pos_embed(model) else [])
    for layer in range(model.cfg.n_layers):
        names.append(z_hook(layer))
        if not model.cfg.attn_only:
            names.append(mlp_out_hook(layer))
    names.append(
        "ln_final.hook_normalized" if norm else f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    )
    if norm:
        names.append(ln_final_scale_hook())
    return names


def dla_forward(
    model: Any,
    tokens: Int[Tensor, "batch pos"],
    targets: Int[Tensor, "batch pos"],
    distractors: Int[Tensor, "batch pos"] | None = None,
    **forward_kwargs: Any,
) -> tuple[
    Float[Tensor, "batch pos component"], Float[Tensor, "batch pos"], Float[Tensor, "batch pos"]
]:
    """Run ``model`` on ``tokens`` and attribute ``logit[targets]`` (minus distractors).

    Returns ``(attributions [batch, pos, component], logits [batch, pos], b_U term
    [batch, pos])``, where ``logits`` is the model's own logit (difference) at each
    position, read from the final normalised residual (the full ``[batch, pos, d_vocab]``
    logits are never built). Positions whose target is meaningless (padding) still get
    numbers; callers mask them.
    """
    norm = _final_norm(model)
    names = _cache_names(model, norm)
    with torch.no_grad():
        _, cache = model.run_with_cache(
            tokens, names_filter=lambda n: n in names, return_type=None, **forward_kwargs
        )
        dirs, ln_bias_logit, b_u = unembed_directions(model, targets, distractors)
        n_layers = model.cfg.n_layers
        pos_embed = cache["hook_pos_embed"] if _has_pos_embed(model) else None
        embed = cache[resid_pre_hook(0)] - (pos_embed if pos_embed is not None else 0)
        mlp_out = None
        bias = sum(b.attn.b_O.float() for b in model.blocks)
        if not model.cfg.attn_only:
            b_outs = [getattr(b.mlp, "b_out", None) for b in model.blocks]
            b_outs = [torch.zeros_like(bias) if b is None else b.float() for b in b_outs]
            mlp_out = [cache[mlp_out_hook(i)].float() - b_outs[i] for i in range(n_layers)]
            bias = bias + sum(b_outs)
        scale = cache[ln_final_scale_hook()] if norm else torch.ones_like(tokens[..., None]).float()
        attr = attribute_components(
            dirs,
            scale,
            embed,
            pos_embed,
            [cache[z_hook(i)] for i in range(n_layers)],
            [b.attn.W_O for b in model.blocks],
            mlp_out,
            bias,
            ln_bias_logit,
        )
        final = cache[names[-2] if norm else names[-1]].float()
        if norm:  # hook_normalized is taken before ln_final's weight and bias
            ln_w, ln_b = getattr(model.ln_final, "w", None), getattr(model.ln_final, "b", None)
            final = final * (ln_w.float() if ln_w is not None else 1.0)
            final = final + (ln_b.float() if ln_b is not None else 0.0)
        w_u = model.W_U.T
        u = w_u[targets].float() - (w_u[distractors].float() if distractors is not None else 0)
        logits = einops.einsum(final, u, "b p d, b p d -> b p") + b_u
    return attr, logits, b_u
