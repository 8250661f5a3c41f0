"""Sites and pools of :func:`~idiomlens.representations.extract` (METHODS.md, "Representations").

This is the pure core of extraction: which TransformerLens hook point a site reads at a
layer (:func:`site_hook`), what is applied to the pooled vector afterwards (the norm's
weight and bias for ``site="norm"``, :func:`site_affine`), and how a whole padded batch
of activations ``[batch, pos, d_model]`` is reduced on its device to one vector per
example, or one per real token (:func:`pool_batch`). Padding never enters a pool.

Why ``norm`` needs an affine step: TransformerLens's ``LayerNorm`` / ``RMSNorm`` fire
``hook_normalized`` *before* multiplying by ``w`` (and adding ``b``), while Hugging Face's
``input_layernorm`` / ``ln_1`` output includes them. Pools are means of rows, so
``pool(x) * w + b == pool(x * w + b)``: the weight is applied to the pooled vectors
only, which is cheaper and exact. A model loaded with weight processing has
``LayerNormPre`` / ``RMSNormPre`` (weights folded into the next layer): there is no
``w`` to apply, and the site is the normalised vector itself (recorded in ``meta``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from ..data.align import AlignedExample
from ..data.batching import Batch
from .names import POOLS, SITES, SPAN_POOLS

__all__ = [
    "SITES",
    "POOLS",
    "SPAN_POOLS",
    "site_hook",
    "site_affine",
    "site_layers",
    "pool_batch",
    "prepare_pool",
    "apply_pool",
]


def check_site_pool(site: str, pool: str) -> None:
    """One clear error for an unknown site or pool.

    >>> check_site_pool("resid", "last")
    Traceback (most recent call last):
    ...
    ValueError: unknown site 'resid'; sites: resid_pre, resid_mid, resid_post, norm, attn_out, mlp_out
    """
    if site not in SITES:
        raise ValueError(f"unknown site {site!r}; sites: {', '.join(SITES)}")
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; pools: {', '.join(POOLS)}")


def site_layers(model: Any, site: str, layers: Sequence[int] | int | None) -> tuple[int, ...]:
    """Validated, sorted, unique layers of ``site`` (``norm`` also has ``n_layers``: the
    final norm). ``None`` means all of them.

    >>> from idiomlens.models import tiny_model
    >>> site_layers(tiny_model(n_layers=2), "norm", None)
    (0, 1, 2)
    >>> site_layers(tiny_model(n_layers=2), "resid_pre", [2])
    Traceback (most recent call last):
    ...
    ValueError: site 'resid_pre' has layers 0..1 in this model, got [2]
    """
    n = int(model.cfg.n_layers) + (1 if site == "norm" else 0)
    if layers is None:
        return tuple(range(n))
    if isinstance(layers, int):
        layers = [layers]
    out = tuple(sorted({int(x) for x in layers}))
    if not out or out[0] < 0 or out[-1] >= n:
        raise ValueError(f"site {site!r} has layers 0..{n - 1} in this model, got {list(layers)}")
    if site == "resid_mid" and (model.cfg.parallel_attn_mlp or model.cfg.attn_only):
        raise ValueError(
            "site 'resid_mid' does not exist in this model (parallel attention and MLP, or "
            "attention only): use resid_pre or resid_post"
        )
    return out


def _norm_module(model: Any, layer: int) -> Any:
    return model.ln_final if layer == model.cfg.n_layers else model.blocks[layer].ln1


def site_hook(model: Any, site: str, layer: int) -> str:
    """The hook point that ``site`` reads at ``layer``.

    ``norm`` reads ``blocks.l.ln1.hook_normalized`` (``ln_final.hook_normalized`` for
    ``l = n_layers``); a model without norms reads what its attention (or unembedding)
    reads, the residual stream.

    >>> from idiomlens.models import tiny_model
    >>> site_hook(tiny_model(n_layers=2), "norm", 2)
    'ln_final.hook_normalized'
    """
    n = model.cfg.n_layers
    if site == "norm":
        if model.cfg.normalization_type is None:
            return (
                f"blocks.{n - 1}.hook_resid_post"
                if layer == n
                else f"blocks.{layer}.hook_resid_pre"
            )
        _check_pre_norm(model)
        return "ln_final.hook_normalized" if layer == n else f"blocks.{layer}.ln1.hook_normalized"
    return SITES[site].format(l=layer)


def _check_pre_norm(model: Any) -> None:
    try:
        from transformer_lens.components.transformer_block import POST_NORM_ARCHITECTURES
    except ImportError:  # older TransformerLens: no post-norm architectures
        return
    arch = getattr(model.cfg, "original_architecture", None)
    if arch in POST_NORM_ARCHITECTURES:
        raise ValueError(
            f"site 'norm' is the input norm of each block; {arch} is post-norm (its ln1 "
            "normalises the attention output), so use resid_pre"
        )


def site_affine(model: Any, site: str, layer: int) -> tuple[Tensor | None, Tensor | None]:
    """``(w, b)`` to apply to pooled ``norm`` vectors (``None`` where there is none)."""
    if site != "norm" or model.cfg.normalization_type is None:
        return None, None
    module = _norm_module(model, layer)
    w, b = getattr(module, "w", None), getattr(module, "b", None)
    as_f32 = lambda t: t.detach().float() if isinstance(t, Tensor) else None  # noqa: E731
    return as_f32(w), as_f32(b)


def check_examples(aligned: Sequence[AlignedExample], pool: str) -> None:
    """Fail before any forward if a pool is empty for some example (naming it)."""
    if pool == "literal":
        for ex in aligned:
            s, e = ex.span
            if e - s + 1 >= len(ex) - ex.p0:
                raise ValueError(
                    f"example {ex.id!r}: the literal set is empty (the idiom covers every "
                    f"token of {ex.text!r}); pool 'literal' needs at least one other token"
                )
    if pool in ("mean", "tokens"):
        for ex in aligned:
            if len(ex) <= ex.p0:
                raise ValueError(f"example {ex.id!r} has no token after BOS")


def prepare_pool(batch: Batch, pool: str) -> Tensor:
    """What :func:`apply_pool` needs for ``batch``, computed once for all layers: row
    indices ``[batch]`` (``last``, ``idiom_last``), normalised weights ``[batch, pos]``
    (``mean``, ``idiom``, ``literal``) or the token mask ``[batch, pos]`` (``tokens``)."""
    if pool == "last":
        return batch.offsets + batch.lengths - 1
    if pool == "idiom_last":
        return batch.spans[:, 1]
    if pool == "tokens":
        return batch.scored_mask()
    masks = {"mean": batch.scored_mask, "idiom": batch.idiom_mask, "literal": batch.literal_mask}
    if pool not in masks:
        raise ValueError(f"unknown pool {pool!r}; pools: {', '.join(POOLS)}")
    weights = masks[pool]().float()
    return weights / weights.sum(1, keepdim=True)


def apply_pool(
    act: Float[Tensor, "batch pos d_model"], prepared: Tensor, pool: str
) -> Float[Tensor, "row d_model"]:
    """Pool ``act`` with :func:`prepare_pool`'s output, on ``act``'s device, in float32."""
    if pool in ("last", "idiom_last"):
        return act[torch.arange(act.shape[0], device=act.device), prepared].float()
    if pool == "tokens":
        return act[prepared].float()
    return torch.bmm(prepared[:, None, :], act.float()).squeeze(1)  # [batch, d_model]


def pool_batch(
    act: Float[Tensor, "batch pos d_model"], batch: Batch, pool: str
) -> Float[Tensor, "row d_model"]:
    """Reduce one site's activations of a padded batch, on their device, in float32.

    Returns ``[batch, d_model]`` (one row per example, batch order) or, for
    ``pool="tokens"``, ``[n_tokens, d_model]``: every position ``p0 .. T-1`` of example 0,
    then of example 1, ... (padding and BOS never included).

    >>> import torch
    >>> from idiomlens.data import IdiomExample, align, make_batch
    >>> from idiomlens.models import tiny_tokenizer
    >>> [al] = align([IdiomExample("a", "Break a leg!", (0, 11))], tiny_tokenizer())
    >>> batch = make_batch([al])
    >>> act = torch.arange(len(al), dtype=torch.float32)[None, :, None]   # value = position
    >>> pool_batch(act, batch, "last").item() == len(al) - 1
    True
    >>> pool_batch(act, batch, "mean").item() == sum(range(1, len(al))) / (len(al) - 1)
    True
    """
    return apply_pool(act, prepare_pool(batch, pool), pool)
