"""Customising training without forking: step callbacks and the context they see.

A callback is either a plain function ``fn(ctx)`` (called after every optimiser step)
or an object with any of these methods (subclass :class:`Callback` for no-op defaults):

- ``on_step_start(ctx)``: before the forward pass; may replace ``ctx.inputs`` (the
  targets ``ctx.targets`` stay as they are) or freeze parameters
  (``requires_grad_(False)``: frozen parameters get no update and no weight decay);
- ``on_before_optimizer_step(ctx)``: after ``backward`` and clipping (edit ``.grad``);
- ``on_step_end(ctx)``: after the optimiser step; ``ctx.step`` counts completed steps.

``ctx.log(name, value)`` adds a column to the run's history (and metrics.jsonl) at the
current step. ``ctx.generator`` is a local ``torch.Generator`` seeded from the run's
seed and saved in checkpoints, so random choices made with it are reproducible and
resume exactly. Training-time forward hooks are passed to ``train_lm(hooks=...)`` as
TransformerLens ``(name_or_filter, fn)`` pairs and are active in training and
evaluation forwards only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Bool, Int
from torch import Tensor

__all__ = ["Callback", "StepContext", "as_callback"]


@dataclass
class StepContext:
    """What a callback sees at one training step.

    Attributes:
        step: steps completed so far (0 at the first ``on_step_start``).
        total_steps: the run's total number of steps.
        model, optimizer: the model being trained and its optimiser.
        inputs: ``[batch, pos]`` tokens fed to the model (replaceable in ``on_step_start``).
        targets: ``[batch, pos]`` next tokens the loss compares with.
        mask: ``[batch, pos]`` which targets the loss averages over.
        loss: the step's loss (set after the forward pass).
        generator: the run's local generator for callbacks.
    """

    step: int
    total_steps: int
    model: Any
    optimizer: torch.optim.Optimizer
    inputs: Int[Tensor, "batch pos"]
    targets: Int[Tensor, "batch pos"]
    mask: Bool[Tensor, "batch pos"]
    generator: torch.Generator
    loss: Tensor | None = None
    logged: dict[str, float] = field(default_factory=dict)

    def log(self, name: str, value: float | Tensor) -> None:
        """Record ``name = value`` in the history at this step."""
        self.logged[name] = float(value)


class Callback:
    """Base class with no-op hooks; override the ones you need."""

    def on_step_start(self, ctx: StepContext) -> None:  # noqa: B027
        pass

    def on_before_optimizer_step(self, ctx: StepContext) -> None:  # noqa: B027
        pass

    def on_step_end(self, ctx: StepContext) -> None:  # noqa: B027
        pass


class _FunctionCallback(Callback):
    def __init__(self, fn: Callable[[StepContext], Any]) -> None:
        self.fn = fn

    def on_step_end(self, ctx: StepContext) -> None:
        self.fn(ctx)


def as_callback(obj: Any) -> Any:
    """``obj`` if it has a callback method, else a plain function wrapped as ``on_step_end``."""
    methods = ("on_step_start", "on_before_optimizer_step", "on_step_end")
    if any(hasattr(obj, m) for m in methods):
        return obj
    if callable(obj):
        return _FunctionCallback(obj)
    raise TypeError(
        f"a callback must be callable or define one of {methods}, got {type(obj).__name__}"
    )


def call(callbacks: list[Any], event: str, ctx: StepContext) -> None:
    """Run ``event`` on every callback that defines it, in order."""
    for cb in callbacks:
        fn = getattr(cb, event, None)
        if fn is not None:
            fn(ctx)
