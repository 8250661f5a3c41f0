"""Fine-tuning methods: which parameters train, as a table keyed by name.

- ``full``: every parameter;
- ``bitfit``: only bias terms (every parameter whose name ends in ``bias``; Ben Zaken et
  al. 2022), the rest frozen in place;
- ``lora`` / ``ia3``: a ``peft`` adapter (``get_peft_model``) around the modules in
  :data:`DEFAULT_TARGETS` for the architecture (or ``target_modules``); the base is frozen
  and only adapter weights train. GPT-2's ``Conv1D`` stores weights transposed, so
  ``fan_in_fan_out`` is set for it.

A method is a function ``prepare(hf_model, config) -> model`` plus whether its
checkpoints are adapters; :func:`prepare_model` looks it up in :data:`METHODS`.

>>> sorted(METHODS)
['bitfit', 'full', 'ia3', 'lora']
>>> DEFAULT_TARGETS["gpt2"].lora
('c_attn', 'c_proj', 'c_fc')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .config import FinetuneConfig

__all__ = [
    "Method",
    "Targets",
    "METHODS",
    "DEFAULT_TARGETS",
    "prepare_model",
    "parameter_counts",
    "adapter_targets",
]


@dataclass(frozen=True, kw_only=True)
class Targets:
    """Default adapter modules of one architecture family (module-name suffixes).

    ``lora`` wraps every projection (the geometry paper's setting); ``ia3`` and
    ``ia3_feedforward`` are the IA3 paper's keys, values and feed-forward output.
    """

    lora: tuple[str, ...]
    ia3: tuple[str, ...]
    ia3_feedforward: tuple[str, ...]


_LLAMA_LIKE = Targets(
    lora=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    ia3=("k_proj", "v_proj", "down_proj"),
    ia3_feedforward=("down_proj",),
)

#: ``config.model_type`` -> default adapter targets.
DEFAULT_TARGETS: dict[str, Targets] = {
    "gpt2": Targets(
        lora=("c_attn", "c_proj", "c_fc"),
        ia3=("c_attn", "mlp.c_proj"),
        ia3_feedforward=("mlp.c_proj",),
    ),
    "gpt_neox": Targets(
        lora=("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
        ia3=("query_key_value", "dense_4h_to_h"),
        ia3_feedforward=("dense_4h_to_h",),
    ),
    "llama": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
}


@dataclass(frozen=True, kw_only=True)
class Method:
    """A fine-tuning method: how to prepare the model, and what its checkpoints hold."""

    name: str
    prepare: Callable[[Any, FinetuneConfig], Any]
    adapter: bool


def _full(model: Any, config: FinetuneConfig) -> Any:
    for param in model.parameters():
        param.requires_grad_(True)
    return model


def _bitfit(model: Any, config: FinetuneConfig) -> Any:
    n_bias = 0
    for name, param in model.named_parameters():
        is_bias = name.endswith("bias")
        param.requires_grad_(is_bias)
        n_bias += is_bias
    if n_bias == 0:
        raise ValueError(
            f"bitfit: the {model.config.model_type} model has no bias parameters to train "
            "(e.g. Llama-style models); use lora, ia3 or full"
        )
    return model


def adapter_targets(model: Any, config: FinetuneConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(target_modules, feedforward_modules)`` for the config's adapter method."""
    model_type = model.config.model_type
    default = DEFAULT_TARGETS.get(model_type)
    targets = config.target_modules
    if targets is None:
        if default is None:
            raise ValueError(
                f"{config.method}: no default target modules for model type {model_type!r} "
                f"(known: {', '.join(sorted(DEFAULT_TARGETS))}); pass target_modules="
            )
        targets = default.lora if config.method == "lora" else default.ia3
    feedforward = config.feedforward_modules
    if feedforward is None:
        feedforward = default.ia3_feedforward if default and config.target_modules is None else ()
    names = [n for n, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise ValueError(
            f"{config.method}: target module(s) {missing} not found in the {model_type} model"
        )
    return tuple(targets), tuple(f for f in feedforward if f in targets)


def _peft(model: Any, config: FinetuneConfig) -> Any:
    from peft import IA3Config, LoraConfig, get_peft_model

    targets, feedforward = adapter_targets(model, config)
    transposed = model.config.model_type == "gpt2"  # Conv1D weights are [in, out]
    if config.method == "lora":
        peft_config = LoraConfig(
            task_type="CAUSAL_LM",
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(targets),
            fan_in_fan_out=transposed,
        )
    else:
        peft_config = IA3Config(
            task_type="CAUSAL_LM",
            target_modules=list(targets),
            feedforward_modules=list(feedforward),
            fan_in_fan_out=transposed,
        )
    # Adapter initialisation draws from torch's global generator: fork it, seeded, so the
    # run is reproducible and the caller's random state is left alone.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return get_peft_model(model, peft_config)


METHODS: dict[str, Method] = {
    "full": Method(name="full", prepare=_full, adapter=False),
    "bitfit": Method(name="bitfit", prepare=_bitfit, adapter=False),
    "lora": Method(name="lora", prepare=_peft, adapter=True),
    "ia3": Method(name="ia3", prepare=_peft, adapter=True),
}


def prepare_model(model: Any, config: FinetuneConfig) -> Any:
    """Apply ``config.method`` to a freshly loaded HF causal LM (in place for full/bitfit)."""
    return METHODS[config.method].prepare(model, config)


def parameter_counts(model: Any) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (each shared tensor counted once)."""
    seen: set[int] = set()
    trainable = total = 0
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        trainable += param.numel() if param.requires_grad else 0
    return trainable, total
