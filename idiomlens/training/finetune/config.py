"""``FinetuneConfig``: every option of a fine-tuning run, validated once.

The config is plain data (JSON-ready through :meth:`FinetuneConfig.to_dict`); it is
written to ``OUT/run.json`` and compared on every later call with the same ``out``, so
a folder never mixes two runs. Options that change *what* is trained (method,
learning rate, data, steps, seed, ...) make up the run's identity; execution settings
(:data:`EXECUTION_FIELDS`: progress bar, logging integrations, device, dataloader
workers) may change between a crash and its resume.

>>> FinetuneConfig(method="lora", max_steps=10).learning_rate
0.0002
>>> FinetuneConfig(method="prefix")
Traceback (most recent call last):
...
ValueError: unknown method 'prefix'; choose one of bitfit, full, ia3, lora
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FinetuneConfig",
    "METHOD_NAMES",
    "OBJECTIVES",
    "SCHEDULES",
    "PRECISIONS",
    "REPORTERS",
    "EXECUTION_FIELDS",
    "DEFAULT_LEARNING_RATES",
]

METHOD_NAMES = ("bitfit", "full", "ia3", "lora")
OBJECTIVES = ("lm", "completion")
SCHEDULES = ("linear", "cosine", "constant", "constant_with_warmup")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Trainer integrations, only used when asked for (``report_to``).
REPORTERS = ("tensorboard", "wandb", "trackio")
#: Fields that do not change what is trained (not part of the run's identity).
EXECUTION_FIELDS = ("progress", "report_to", "device", "dataloader_workers", "logging_steps")
#: Default learning rate per method: the usual values in the LoRA, IA3 and BitFit papers.
DEFAULT_LEARNING_RATES = {"full": 5e-5, "bitfit": 1e-3, "lora": 2e-4, "ia3": 3e-3}


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig:
    """Options of :func:`~idiomlens.training.finetune.finetune` (same names as its keywords).

    Args:
        method: ``"full"``, ``"bitfit"`` (bias terms only), ``"lora"`` or ``"ia3"``.
        objective: ``"lm"`` (every real token) or ``"completion"`` (completion tokens only).
        learning_rate: peak learning rate (``None``: :data:`DEFAULT_LEARNING_RATES`).
        epochs: passes over the training data (ignored when ``max_steps`` is given).
        max_steps: optimizer steps (overrides ``epochs``).
        batch_size: examples per device per micro-batch.
        grad_accum: micro-batches per optimizer step.
        warmup: linear warm-up: a float in ``[0, 1)`` is a fraction of the steps, an int
            ``>= 1`` a number of steps.
        schedule: ``"linear"``, ``"cosine"``, ``"constant"`` or ``"constant_with_warmup"``.
        weight_decay: AdamW weight decay.
        max_grad_norm: gradient clipping norm (``0`` disables).
        eval_fraction: fraction of the data held out for evaluation (seeded split).
        eval_every: evaluate every N steps (and at the end); needs held-out data.
        seed: seed of the run (data order, adapter init, dropout).
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"`` (mixed precision on CUDA), or
            ``"auto"`` (bf16 where the GPU supports it, else fp32).
        checkpoints: an int ``n`` (``n`` log-spaced saves plus step 0 and the end), an
            explicit sequence of steps, or ``0`` (step 0 and the end only).
        max_length: tokens per example (longer ones are truncated; default the model's
            context, capped at 1024).
        lora_r, lora_alpha, lora_dropout: LoRA rank, scale numerator and dropout.
        target_modules: module names the adapter wraps (default per architecture).
        feedforward_modules: IA3's feed-forward modules (scaled on the input side).
        text_field, prompt_field, completion_field: record fields read from data.
        progress: show the Trainer's progress bar.
        report_to: Trainer integrations to log to, from :data:`REPORTERS` (none by default).
        device: ``None`` (the Trainer's choice: CUDA when present) or ``"cpu"``.
        dataloader_workers: dataloader worker processes.
        logging_steps: log the training loss every N steps (to ``history.jsonl``).
    """

    method: str
    objective: str = "lm"
    learning_rate: float | int | None = None
    epochs: float | int = 1.0
    max_steps: int | None = None
    batch_size: int = 8
    grad_accum: int = 1
    warmup: float | int = 0.0
    schedule: str = "linear"
    weight_decay: float | int = 0.0
    max_grad_norm: float | int = 1.0
    eval_fraction: float | int = 0.0
    eval_every: int | None = None
    seed: int = 0
    precision: str = "auto"
    checkpoints: int | Sequence[int] = 10
    max_length: int | None = None
    lora_r: int = 8
    lora_alpha: float | int = 16.0
    lora_dropout: float | int = 0.0
    target_modules: Sequence[str] | None = None
    feedforward_modules: Sequence[str] | None = None
    text_field: str = "text"
    prompt_field: str = "prompt"
    completion_field: str = "completion"
    progress: bool = True
    report_to: Sequence[str] = field(default_factory=tuple)
    device: str | None = None
    dataloader_workers: int = 0
    logging_steps: int = 1

    def __post_init__(self) -> None:
        _choice("method", self.method, METHOD_NAMES)
        _choice("objective", self.objective, OBJECTIVES)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("precision", self.precision, PRECISIONS)
        if self.learning_rate is None:
            object.__setattr__(self, "learning_rate", DEFAULT_LEARNING_RATES[self.method])
        for name in ("target_modules", "feedforward_modules"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "report_to", tuple(self.report_to or ()))
        for name in self.report_to:
            _choice("report_to", name, REPORTERS)
        if not isinstance(self.checkpoints, int):
            object.__setattr__(self, "checkpoints", tuple(int(s) for s in self.checkpoints))
        self._check_numbers()

    def _check_numbers(self) -> None:
        positive = {"batch_size": self.batch_size, "grad_accum": self.grad_accum}
        positive["lora_r"], positive["logging_steps"] = self.lora_r, self.logging_steps
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.max_steps is None and not self.epochs > 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning rate must be > 0, got {self.learning_rate}")
        if isinstance(self.warmup, float) and not 0 <= self.warmup < 1:
            raise ValueError(f"warmup as a fraction must be in [0, 1), got {self.warmup}")
        if isinstance(self.warmup, int) and self.warmup < 0:
            raise ValueError(f"warmup steps must be >= 0, got {self.warmup}")
        if not 0 <= self.eval_fraction < 1:
            raise ValueError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if self.eval_every is not None and self.eval_every < 1:
            raise ValueError(f"eval_every must be >= 1, got {self.eval_every}")
        if isinstance(self.checkpoints, int) and self.checkpoints < 0:
            raise ValueError(f"checkpoints must be >= 0, got {self.checkpoints}")
        if not isinstance(self.checkpoints, int) and any(s < 1 for s in self.checkpoints):
            raise ValueError(f"checkpoint steps must be >= 1, got {self.checkpoints}")
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {self.max_length}")
        if self.device not in (None, "cpu", "auto", "cuda"):
            raise ValueError(f"device must be None, 'auto', 'cuda' or 'cpu', got {self.device!r}")

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> FinetuneConfig:
        """Build from keywords, naming unknown ones (``lr`` is an alias of ``learning_rate``)."""
        kwargs = dict(kwargs)
        if "lr" in kwargs:
            kwargs["learning_rate"] = kwargs.pop("lr")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"finetune: unknown option(s) {unknown}; known: {sorted(known)}")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (tuples as lists)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def identity(self) -> dict[str, Any]:
        """:meth:`to_dict` without the execution settings (:data:`EXECUTION_FIELDS`)."""
        return {k: v for k, v in self.to_dict().items() if k not in EXECUTION_FIELDS}


def _choice(name: str, value: Any, options: Sequence[str]) -> None:
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(sorted(options))}")
