"""One forward pass with hooks, stopped right after the last hook it needs.

:func:`forward` is the only way the engine (and the analyses built on it) runs a model:
it attaches the given TransformerLens hooks for the duration of one call and, unless the
logits are needed, aborts the forward right after the hook point that fires last, so
nothing later in the network is computed (:func:`~idiomlens.models.partial.run_hooks_until`).

Which hook fires last is read off the model itself, not guessed from names: the first
time a set of hook points is used on a model, a one-token forward records the order in
which they fire (:func:`hook_order`, cached per model). This holds for every
architecture TransformerLens builds (parallel attention/MLP, GQA, post-norms), and a
hook point that never fires is reported before any real work.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..models.partial import run_hooks_until

__all__ = ["forward", "capture", "hook_order", "last_hook", "model_device"]

Hook = tuple[str, Callable[..., Any]]

_ORDER_CACHE: weakref.WeakKeyDictionary[Any, dict[frozenset[str], tuple[str, ...]]] = (
    weakref.WeakKeyDictionary()
)


def model_device(model: Any) -> torch.device:
    """The device token ids go to: the embedding's device (the first block's, if none)."""
    w_e = getattr(getattr(model, "embed", None), "W_E", None)
    if isinstance(w_e, Tensor):
        return w_e.device
    return next(model.parameters()).device


def hook_order(model: Any, names: Sequence[str]) -> tuple[str, ...]:
    """``names`` (unique) in the order they fire in a forward pass of ``model``.

    Raises ``ValueError`` naming a hook point the model does not have or that never
    fires (e.g. ``attn.hook_result`` without ``use_attn_result``).

    >>> from idiomlens.models import tiny_model
    >>> hook_order(tiny_model(), ["blocks.1.hook_resid_pre", "blocks.0.attn.hook_z",
    ...                           "blocks.0.attn.hook_pattern"])
    ('blocks.0.attn.hook_pattern', 'blocks.0.attn.hook_z', 'blocks.1.hook_resid_pre')
    """
    wanted = frozenset(names)
    per_model = _ORDER_CACHE.setdefault(model, {})
    if wanted in per_model:
        return per_model[wanted]
    unknown = sorted(n for n in wanted if n not in model.hook_dict)
    if unknown:
        raise ValueError(f"unknown hook point(s) {unknown}; see model.hook_dict")
    seen: list[str] = []

    def record(act: Tensor, hook: Any) -> None:
        if hook.name not in seen:
            seen.append(hook.name)

    tokens = torch.zeros((1, 1), dtype=torch.long, device=model_device(model))
    with torch.inference_mode():
        model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(n, record) for n in wanted])
    missing = sorted(wanted - set(seen))
    if missing:
        raise ValueError(f"hook point(s) {missing} never fire in this model's forward pass")
    per_model[wanted] = tuple(seen)
    return per_model[wanted]


def last_hook(model: Any, names: Sequence[str]) -> str:
    """The hook point of ``names`` that fires last (see :func:`hook_order`)."""
    return hook_order(model, names)[-1]


def forward(
    model: Any,
    tokens: Tensor,
    hooks: Sequence[Hook],
    *,
    logits: bool = False,
    **forward_kwargs: Any,
) -> Tensor | None:
    """Run ``model`` on ``tokens`` with ``hooks`` attached for this call only.

    With ``logits=False`` the pass stops right after the last hook point in ``hooks``
    fires and returns ``None`` (the hooks collect what the caller needs); with
    ``logits=True`` it runs to the end and returns the logits ``[batch, pos, d_vocab]``.
    Without hooks and without logits there is nothing to compute: ``None`` at once.

    >>> import torch
    >>> from idiomlens.models import tiny_model
    >>> seen = []
    >>> forward(tiny_model(), torch.tensor([[0, 5, 6]]),
    ...         [("blocks.0.attn.hook_z", lambda z, hook: seen.append(tuple(z.shape)))])
    >>> seen
    [(1, 3, 4, 8)]
    """
    if logits:
        return model.run_with_hooks(tokens, fwd_hooks=list(hooks), **forward_kwargs)
    if not hooks:
        return None
    stop = last_hook(model, [name for name, _ in hooks])
    run_hooks_until(model, tokens, hooks, stop, **forward_kwargs)
    return None


def capture(
    model: Any,
    tokens: Tensor,
    names: Sequence[str],
    *,
    logits: bool = False,
    **forward_kwargs: Any,
) -> tuple[Tensor | None, dict[str, Tensor]]:
    """The activations at ``names`` (detached, on the model's device) from one
    :func:`forward`, stopped after the last of them unless ``logits`` is set.

    The one filtered activation capture in idiomlens (never ``run_with_cache()`` without
    a filter): returns ``(logits or None, {name: activation})``.

    >>> import torch
    >>> from idiomlens.models import tiny_model
    >>> _, acts = capture(tiny_model(), torch.tensor([[0, 5, 6]]), ["blocks.0.attn.hook_z"])
    >>> tuple(acts["blocks.0.attn.hook_z"].shape)
    (1, 3, 4, 8)
    """
    store: dict[str, Tensor] = {}

    def keep(activation: Tensor, hook: Any) -> None:
        store[hook.name] = activation.detach()

    hooks = [(name, keep) for name in dict.fromkeys(names)]
    out = forward(model, tokens, hooks, logits=logits, **forward_kwargs)
    return out, store
