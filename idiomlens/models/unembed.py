"""The model's head: final norm and unembedding, in one place.

Analyses that stop a forward early or start it late (activation patching runs the
stacked patched copies only from the patched layer; direct logit attribution reads the
final residual stream) finish the computation themselves. They do it here, exactly as
``HookedTransformer.forward`` does: ``ln_final`` (when the model has a final norm), then
``W_U`` and ``b_U``, then the output soft-cap (when the config sets one).

>>> import torch
>>> from idiomlens.models import tiny_model
>>> model = tiny_model()
>>> tokens = torch.tensor([[0, 5, 6]])
>>> resid = model(tokens, stop_at_layer=model.cfg.n_layers)   # the final residual stream
>>> logits = unembed(model, final_norm(model, resid))
>>> torch.allclose(logits, model(tokens), atol=1e-5)
True
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

__all__ = ["final_norm", "unembed", "unembed_columns"]


def final_norm(
    model: Any, resid: Float[Tensor, "*batch d_model"]
) -> Float[Tensor, "*batch d_model"]:
    """``ln_final(resid)``, or ``resid`` itself for a model without a final norm."""
    if model.cfg.normalization_type is None:
        return resid
    return model.ln_final(resid)


def unembed(
    model: Any,
    normed: Float[Tensor, "*batch d_model"],
    *,
    out: Tensor | None = None,
) -> Float[Tensor, "*batch d_vocab"]:
    """Logits of the final-normed residual: ``normed @ W_U + b_U``, then the soft-cap.

    ``out`` (contiguous, the logits' shape) is written in place, so callers that unembed
    many times can reuse one buffer instead of allocating the logits per call.
    """
    cap = getattr(model.cfg, "output_logits_soft_cap", None)
    capped = cap is not None and cap > 0
    if out is None:  # out of place: differentiable
        logits = normed @ model.W_U + model.b_U
        return torch.tanh(logits / cap) * cap if capped else logits
    torch.matmul(normed, model.W_U, out=out)
    out += model.b_U
    if capped:
        torch.tanh(out / cap, out=out).mul_(cap)
    return out


def unembed_columns(
    model: Any,
    normed: Float[Tensor, "batch pos d_model"],
    targets: Int[Tensor, "batch pos"],
    distractors: Int[Tensor, "batch pos"] | None = None,
) -> Float[Tensor, "batch pos"]:
    """The logit of ``targets`` (minus that of ``distractors``) at every position, in
    float32, without building ``[batch, pos, d_vocab]``: only the needed columns of
    ``W_U`` are gathered. No soft-cap (it is not linear; callers that need it reject it).
    """
    w_u = model.W_U.T  # [d_vocab, d_model] view; gather rows before casting
    u = w_u[targets].float()
    b_u = model.b_U[targets].float()
    if distractors is not None:
        u = u - w_u[distractors].float()
        b_u = b_u - model.b_U[distractors].float()
    return torch.einsum("bpd,bpd->bp", normed.float(), u) + b_u
