"""Forward passes that stop as soon as the last activation they need has been seen.

TransformerLens's ``stop_at_layer`` always finishes the last block it runs (its MLP,
attention output projection and residual adds). An analysis that only reads
``hook_pattern`` / ``hook_z`` of that block does not need them: :func:`run_hooks_until`
aborts the forward from a hook placed after the caller's own hooks on the last site.
TransformerLens removes the hooks in a ``finally``, so aborting leaves the model clean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["run_hooks_until"]


class _StopForward(Exception):
    """Raised by the stop hook; never escapes :func:`run_hooks_until`."""


def _stop(activation: Any, hook: Any) -> None:
    raise _StopForward


def run_hooks_until(
    model: Any,
    tokens: Any,
    fwd_hooks: Sequence[tuple[str, Callable[..., Any]]],
    stop_after: str,
    **forward_kwargs: Any,
) -> None:
    """Run ``model`` with ``fwd_hooks`` and abort right after the hook point ``stop_after``.

    Every hook on ``stop_after`` runs first (hooks on one point run in the order added);
    nothing later in the network is computed. Returns nothing: the hooks collect what the
    caller needs.

    Raises:
        RuntimeError: the forward finished without reaching ``stop_after`` (e.g. a
            ``stop_at_layer`` before it in ``forward_kwargs``).

    >>> import torch
    >>> from idiomlens.models import tiny_model
    >>> seen = []
    >>> record = lambda act, hook: seen.append(hook.name)
    >>> run_hooks_until(tiny_model(), torch.tensor([[0, 5, 6]]),
    ...                 [("blocks.0.attn.hook_pattern", record), ("blocks.0.attn.hook_z", record)],
    ...                 "blocks.0.attn.hook_pattern")
    >>> seen  # hook_z comes after the stop
    ['blocks.0.attn.hook_pattern']
    """
    try:
        model.run_with_hooks(tokens, fwd_hooks=[*fwd_hooks, (stop_after, _stop)], **forward_kwargs)
    except _StopForward:
        return
    raise RuntimeError(f"the forward pass never reached {stop_after!r}")
