"""PEFT adapter directories (LoRA, IA3, ...) merged into their local base, offline.

An adapter directory holds ``adapter_config.json`` and the adapter weights. Its base is
``base_model_name_or_path`` from that config (tried as given, then relative to the
adapter directory) or an explicit ``base=``; it must be a local Hugging Face checkpoint
directory. The base is loaded with transformers offline, the adapter applied with
``peft.PeftModel.from_pretrained`` and folded into the weights with
``merge_and_unload()``; the merged HF model is then converted like any checkpoint
(:func:`~idiomlens.models.hf.hooked_from_hf_model`), so the HookedTransformer computes
exactly what the merged HF+PEFT model computes.

Only adapters that change weights can be merged (LoRA and its variants, IA3);
prompt-learning adapters (prefix/prompt tuning) change the input and are refused.
BitFit and full fine-tunes are not adapters: load them as plain checkpoints.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer

from .hf import (
    architecture_of,
    hooked_from_hf_model,
    is_hf_dir,
    load_hf_model,
    load_hf_tokenizer,
    read_hf_config,
    weights_format,
)
from .info import DEFAULT_PROCESSING, ModelInfo, Processing, record_info

__all__ = ["ADAPTER_CONFIG", "is_adapter_dir", "resolve_base", "load_adapter_dir"]

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_dir(path: str | Path) -> bool:
    """Whether ``path`` is a directory with a PEFT ``adapter_config.json``."""
    return (Path(path) / ADAPTER_CONFIG).is_file()


def resolve_base(adapter_dir: str | Path, base: str | Path | None = None) -> Path:
    """The local base checkpoint directory of an adapter.

    ``base`` wins when given; otherwise ``base_model_name_or_path`` of the adapter
    config, tried as given and then relative to the adapter directory. Raises
    ``FileNotFoundError`` naming the adapter and the base when no candidate is a local
    Hugging Face checkpoint (Hub names are not fetched: pass ``base=`` a local copy).
    """
    adapter_dir = Path(adapter_dir)
    if base is not None:
        candidates = [Path(base).expanduser()]
        declared = str(base)
    else:
        raw = json.loads((adapter_dir / ADAPTER_CONFIG).read_text())
        declared = raw.get("base_model_name_or_path") or ""
        if not declared:
            raise FileNotFoundError(
                f"adapter {adapter_dir}: {ADAPTER_CONFIG} names no base_model_name_or_path; "
                "pass base= a local checkpoint directory"
            )
        candidates = [Path(declared).expanduser(), adapter_dir / declared]
    for candidate in candidates:
        if is_hf_dir(candidate):
            return candidate.resolve()
    raise FileNotFoundError(
        f"adapter {adapter_dir}: base model {declared!r} is not a local Hugging Face "
        "checkpoint directory (config.json); pass base= a local copy of the base"
    )


def _merged_hf_model(adapter_dir: Path, base_dir: Path, dtype: torch.dtype) -> tuple[Any, str]:
    """Base HF model with the adapter merged in, and the PEFT type."""
    from peft import PeftConfig, PeftModel

    peft_config = PeftConfig.from_pretrained(str(adapter_dir))
    peft_type = str(getattr(peft_config.peft_type, "value", peft_config.peft_type))
    if getattr(peft_config, "is_prompt_learning", False):
        raise ValueError(
            f"adapter {adapter_dir}: a {peft_type} adapter changes the input, not the "
            "weights, and cannot be merged into a HookedTransformer"
        )
    base_model = load_hf_model(base_dir, dtype=dtype)
    peft_model = PeftModel.from_pretrained(
        base_model, str(adapter_dir), config=peft_config, is_trainable=False
    )
    if not hasattr(peft_model, "merge_and_unload"):
        raise ValueError(f"adapter {adapter_dir}: PEFT type {peft_type} cannot be merged")
    return peft_model.merge_and_unload().eval(), peft_type


def load_adapter_dir(
    adapter_dir: str | Path,
    *,
    base: str | Path | None = None,
    device: str,
    dtype: torch.dtype,
    n_ctx: int | None = None,
    processing: Processing = DEFAULT_PROCESSING,
) -> HookedTransformer:
    """Merge the adapter in ``adapter_dir`` into its base and return a HookedTransformer.

    The tokenizer is the adapter directory's when it has one, else the base's. The
    model's :func:`~idiomlens.models.model_info` records the base, the PEFT type and
    the processing flags.
    """
    adapter_dir = Path(adapter_dir).expanduser().resolve()
    base_dir = resolve_base(adapter_dir, base)
    base_config = read_hf_config(base_dir)  # clear error for unsupported architectures
    merged, peft_type = _merged_hf_model(adapter_dir, base_dir, dtype)
    logger.info("merged %s adapter %s into %s", peft_type, adapter_dir, base_dir)
    model = hooked_from_hf_model(
        merged,
        name=adapter_dir.name,
        tokenizer=load_hf_tokenizer(adapter_dir, base_dir),
        device=device,
        dtype=dtype,
        n_ctx=n_ctx,
        processing=processing,
    )
    info = ModelInfo(
        source=str(adapter_dir),
        kind="peft_adapter",
        architecture=architecture_of(base_config, base_dir),
        processing=processing,
        base=str(base_dir),
        adapter_type=peft_type,
        weights_format=weights_format(base_dir),
    )
    record_info(model, info)
    return model
