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

Cost: one forward per batch, stopped after the final norm's scale (the unembedding is
never run). Each component's term is computed inside its hook (:func:`dla_sites`) by
dotting the activation with the per-position direction (``z_h . (W_O[h] @ u)``), so no
activation is kept and ``[component, batch, pos, d_model]`` and ``z[..., None] * W_O``
are never built. The model's own logit is read from the final residual through the
model's head (:mod:`idiomlens.models.unembed`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from .._heads import head_label, mlp_label
from ..engine import Site, forward, site_hooks
from ..models.sites import (
    ln_final_scale_hook,
    mlp_out_hook,
    resid_post_hook,
    resid_pre_hook,
    z_hook,
)
from ..models.unembed import final_norm, unembed_columns

__all__ = [
    "component_labels",
    "attribute_components",
    "unembed_directions",
    "dla_forward",
    "dla_sites",
    "dla_state",
    "dla_outputs",
]

log = logging.getLogger(__name__)

_CENTRED_NORMS = ("LayerNorm", "LayerNormPre")
_SUPPORTED_NORMS = ("LayerNorm", "LayerNormPre", "RMSNorm", "RMSNormPre")


def _has_pos_embed(model: Any) -> bool:
    return model.cfg.positional_embedding_type == "standard"


def component_labels(model: Any) -> tuple[str, ...]:
    """``("embed", ["pos_embed",] "L0H0", ..., "L0_mlp", "L1H0", ..., "bias")``, residual order."""
    labels = ["embed"] + (["pos_embed"] if _has_pos_embed(model) else [])
    for layer in range(model.cfg.n_layers):
        labels += [head_label(layer, h) for h in range(model.cfg.n_heads)]
        if not model.cfg.attn_only:
            labels.append(mlp_label(layer))
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


def _vector_term(x: Tensor, dirs: Tensor) -> Tensor:
    """``x . dirs`` per position, ``[batch, pos, 1]`` (float32)."""
    return einops.einsum(x.float(), dirs, "b p d, b p d -> b p")[..., None]


def _head_terms(z: Tensor, W_O: Tensor, dirs: Tensor) -> Tensor:
    """Each head's ``z_h . (W_O[h] @ dirs)`` per position, ``[batch, pos, head]``."""
    # project the direction back through W_O: [batch, pos, head, d_head], the size of z
    back = einops.einsum(W_O.float(), dirs, "h e d, b p d -> b p h e")
    return einops.einsum(z.float(), back, "b p h e, b p h e -> b p h")


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
    parts = [_vector_term(embed, dirs)]
    if pos_embed is not None:
        parts.append(_vector_term(pos_embed, dirs))
    for layer, z_l in enumerate(z):
        parts.append(_head_terms(z_l, W_O[layer], dirs))
        if mlp_out is not None:
            parts.append(_vector_term(mlp_out[layer], dirs))
    return _combine(parts, dirs, bias, scale, ln_bias_logit)


def _combine(parts, dirs, bias, scale, ln_bias_logit) -> Tensor:  # type: ignore[no-untyped-def]
    parts = [*parts, (dirs @ bias.float())[..., None]]
    attr = torch.cat(parts, dim=-1) / scale.float()
    attr[..., -1] += ln_bias_logit
    return attr


# --------------------------------------------------------------------------- the forward


def dla_state(
    model: Any,
    targets: Int[Tensor, "batch pos"],
    distractors: Int[Tensor, "batch pos"] | None = None,
) -> dict[str, Any]:
    """The per-batch state :func:`dla_sites` write into: directions and the terms so far."""
    dirs, ln_bias_logit, b_u = unembed_directions(model, targets, distractors)
    return {
        "_dirs": dirs,
        "_ln_bias_logit": ln_bias_logit,
        "_b_u": b_u,
        "_targets": targets,
        "_distractors": distractors,
        "_terms": {},
    }


def _keep(act: Tensor, batch: Any, state: dict[str, Any], *, key: str) -> None:
    state[key] = act


def _on_embed(resid: Tensor, batch: Any, state: dict[str, Any]) -> None:
    pos_embed = state.get("_pos_embed")  # hook_pos_embed fires before resid_pre 0
    embed = resid - pos_embed if pos_embed is not None else resid
    state["_terms"]["embed"] = _vector_term(embed, state["_dirs"])
    if pos_embed is not None:
        state["_terms"]["pos_embed"] = _vector_term(pos_embed, state["_dirs"])


def _on_z(z: Tensor, batch: Any, state: dict[str, Any], *, layer: int, W_O: Tensor) -> None:
    state["_terms"][z_hook(layer)] = _head_terms(z, W_O, state["_dirs"])


def _on_mlp(out: Tensor, batch: Any, state: dict[str, Any], *, layer: int, b_out) -> None:  # type: ignore[no-untyped-def]
    state["_terms"][mlp_out_hook(layer)] = _vector_term(out.float() - b_out, state["_dirs"])


def _b_outs(model: Any) -> list[Tensor]:
    zero = torch.zeros_like(model.blocks[0].attn.b_O.float()[0])
    outs = [getattr(b.mlp, "b_out", None) for b in model.blocks]
    return [zero if b is None else b.float() for b in outs]


def dla_sites(model: Any) -> list[Site]:
    """Engine sites that compute every component's term inside the forward.

    They write into a :func:`dla_state`; :func:`dla_outputs` then assembles the result.
    The last site is the final norm's scale (or the last residual without a final norm).
    """
    norm = _final_norm(model)
    n_layers = model.cfg.n_layers
    sites = []
    if _has_pos_embed(model):
        sites.append(Site("hook_pos_embed", partial(_keep, key="_pos_embed")))
    sites.append(Site(resid_pre_hook(0), _on_embed))
    b_outs = None if model.cfg.attn_only else _b_outs(model)
    for layer in range(n_layers):
        W_O = model.blocks[layer].attn.W_O
        sites.append(Site(z_hook(layer), partial(_on_z, layer=layer, W_O=W_O)))
        if b_outs is not None:
            sites.append(
                Site(mlp_out_hook(layer), partial(_on_mlp, layer=layer, b_out=b_outs[layer]))
            )
    sites.append(Site(resid_post_hook(n_layers - 1), partial(_keep, key="_final")))
    if norm:
        sites.append(Site(ln_final_scale_hook(), partial(_keep, key="_scale")))
    return sites


def dla_outputs(
    model: Any, state: dict[str, Any]
) -> tuple[
    Float[Tensor, "batch pos component"], Float[Tensor, "batch pos"], Float[Tensor, "batch pos"]
]:
    """``(attributions, logits, b_U term)`` from a state filled by :func:`dla_sites`."""
    terms, dirs = state["_terms"], state["_dirs"]
    parts = [terms["embed"]] + ([terms["pos_embed"]] if "pos_embed" in terms else [])
    for layer in range(model.cfg.n_layers):
        parts.append(terms[z_hook(layer)])
        if not model.cfg.attn_only:
            parts.append(terms[mlp_out_hook(layer)])
    bias = sum(b.attn.b_O.float() for b in model.blocks)
    if not model.cfg.attn_only:
        bias = bias + sum(_b_outs(model))
    scale = state.get("_scale")
    if scale is None:
        scale = torch.ones_like(dirs[..., :1])
    attr = _combine(parts, dirs, bias, scale, state["_ln_bias_logit"])
    normed = final_norm(model, state["_final"])
    logits = unembed_columns(model, normed, state["_targets"], state["_distractors"])
    return attr, logits, state["_b_u"]


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
    position, read from the final residual through the model's head (the full
    ``[batch, pos, d_vocab]`` logits are never built). Positions whose target is
    meaningless (padding) still get numbers; callers mask them. One
    :func:`~idiomlens.engine.forward`, stopped after the final norm's scale.
    """
    with torch.no_grad():
        state = dla_state(model, targets, distractors)
        forward(model, tokens, site_hooks(dla_sites(model), None, state), **forward_kwargs)
        return dla_outputs(model, state)
