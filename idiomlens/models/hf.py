"""Local Hugging Face checkpoints -> ``HookedTransformer``, fully offline.

``HookedTransformer.from_pretrained`` resolves every name through the Hub, even when
given ``hf_model=``, so a local directory needs its own path. This module builds it
from TransformerLens's own pieces, so numerics stay exactly TransformerLens's:

1. the HF config is read with ``AutoConfig.from_pretrained(dir, local_files_only=True)``
   and converted by TransformerLens's ``get_pretrained_model_config`` (the per-
   architecture code in ``loading_from_pretrained``). That function guesses the
   architecture from substrings of the *name* (a path containing ``llama`` or ``gemma``
   would pick a hard-coded config), so it is given a copy of ``config.json`` in a
   neutral temporary folder, and the result is checked against ``architectures[0]``;
2. the HF model is loaded by ``AutoModelForCausalLM.from_pretrained`` offline
   (safetensors when present, else ``pytorch_model.bin`` with ``weights_only=True``;
   never remote code), and its weights are renamed by TransformerLens's converter for
   the architecture (``convert_gpt2_weights``, ``convert_neox_weights`` ...);
3. ``HookedTransformer(cfg, tokenizer)`` receives them through
   ``load_and_process_state_dict`` with the :class:`~idiomlens.models.info.Processing`
   flags (``from_pretrained``'s defaults unless asked otherwise).

Fine-tunes that change weights only (full fine-tunes, BitFit) are ordinary checkpoints.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens import loading_from_pretrained as tl_loading
from transformer_lens.pretrained import weight_conversions as wc

from .info import DEFAULT_PROCESSING, ModelInfo, Processing, record_info

__all__ = [
    "SUPPORTED_ARCHITECTURES",
    "MAX_DEFAULT_CTX",
    "is_hf_dir",
    "read_hf_config",
    "architecture_of",
    "hooked_config_from_hf",
    "hooked_from_hf_model",
    "load_hf_checkpoint",
    "load_hf_model",
    "load_hf_tokenizer",
    "weights_format",
]

logger = logging.getLogger(__name__)

#: TransformerLens's weight converter per HF architecture. Every family listed is tested
#: against the HF model's log-probs (tests/models/test_hf_checkpoints.py).
_CONVERTERS: dict[str, Callable[[Any, HookedTransformerConfig], dict[str, torch.Tensor]]] = {
    "GPT2LMHeadModel": wc.convert_gpt2_weights,
    "GPTNeoXForCausalLM": wc.convert_neox_weights,
    "LlamaForCausalLM": wc.convert_llama_weights,
    "Qwen2ForCausalLM": wc.convert_qwen2_weights,
    "MistralForCausalLM": wc.convert_mistral_weights,
    "Qwen3ForCausalLM": wc.convert_qwen3_weights,
}
SUPPORTED_ARCHITECTURES: tuple[str, ...] = tuple(_CONVERTERS)
#: ``config.model_type`` -> architecture, for configs saved without ``architectures``.
_BY_MODEL_TYPE = {
    "gpt2": "GPT2LMHeadModel",
    "gpt_neox": "GPTNeoXForCausalLM",
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
}
#: ``n_ctx`` cap when none is asked for: TransformerLens allocates ``n_ctx x n_ctx``
#: causal masks per layer, and long-context configs (32k-128k) would not fit.
MAX_DEFAULT_CTX = 2048

#: Substrings that make TransformerLens's config code pick a config by name.
_NAME_TRIGGERS = ("llama", "gemma", "wav2vec2")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def is_hf_dir(path: str | Path) -> bool:
    """Whether ``path`` is a directory with a Hugging Face ``config.json``."""
    return (Path(path) / "config.json").is_file()


def weights_format(path: str | Path) -> str:
    """``"safetensors"`` if the directory has any ``*.safetensors``, else ``"pytorch_bin"``.

    Raises ``FileNotFoundError`` naming the directory when it holds neither.
    """
    path = Path(path)
    if any(path.glob("*.safetensors")):
        return "safetensors"
    if any(path.glob("pytorch_model*.bin")):
        return "pytorch_bin"
    raise FileNotFoundError(f"{path}: no weights (*.safetensors or pytorch_model*.bin)")


def read_hf_config(path: str | Path) -> Any:
    """Read ``path/config.json`` offline and check that its architecture is supported."""
    from transformers import AutoConfig

    path = Path(path)
    if not is_hf_dir(path):
        raise FileNotFoundError(f"{path}: not a Hugging Face checkpoint (no config.json)")
    config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    architecture = architecture_of(config, path)
    if architecture not in _CONVERTERS:
        raise ValueError(
            f"{path}: architecture {architecture!r} is not supported; "
            f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    return config


def architecture_of(config: Any, where: Path | str) -> str:
    """``architectures[0]``, or the causal-LM class of ``model_type`` when it is missing."""
    architectures = getattr(config, "architectures", None) or []
    if architectures:
        return architectures[0]
    inferred = _BY_MODEL_TYPE.get(getattr(config, "model_type", None))
    if inferred is None:
        raise ValueError(
            f"{where}: config.json names no architecture and model_type "
            f"{getattr(config, 'model_type', None)!r} is not supported; "
            f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    return inferred


def hooked_config_from_hf(
    hf_config: Any,
    *,
    name: str,
    device: str,
    dtype: torch.dtype,
    n_ctx: int | None = None,
    fold_ln: bool = True,
) -> HookedTransformerConfig:
    """TransformerLens's config for a HF config object, without touching the Hub.

    ``n_ctx`` defaults to the checkpoint's context length capped at
    :data:`MAX_DEFAULT_CTX`. ``fold_ln`` turns ``LN``/``RMS`` into ``LNPre``/``RMSPre``
    as ``from_pretrained`` does.
    """
    architecture = architecture_of(hf_config, name)
    raw = hf_config.to_dict()
    raw["architectures"] = [architecture]
    # transformers 5 dropped GPT-2's ``n_ctx`` attribute, which TransformerLens reads.
    raw.setdefault("n_ctx", raw.get("n_positions"))
    with tempfile.TemporaryDirectory(prefix="idiomlens-hfcfg-", dir=_neutral_parent()) as tmp:
        neutral = Path(tmp) / "checkpoint"
        neutral.mkdir()
        (neutral / "config.json").write_text(json.dumps(raw))
        probe = tl_loading.convert_hf_model_config(
            str(neutral), local_files_only=True, trust_remote_code=False
        )
        native_ctx = probe["n_ctx"]
        if n_ctx is None and native_ctx > MAX_DEFAULT_CTX:
            logger.info(
                "%s: n_ctx capped at %d (checkpoint: %d)", name, MAX_DEFAULT_CTX, native_ctx
            )
        cfg = tl_loading.get_pretrained_model_config(
            str(neutral),
            hf_cfg=raw,
            fold_ln=fold_ln,
            device=device,
            dtype=dtype,
            n_ctx=n_ctx if n_ctx is not None else min(native_ctx, MAX_DEFAULT_CTX),
            local_files_only=True,
            trust_remote_code=False,
        )
    if cfg.original_architecture != architecture:
        raise RuntimeError(
            f"{name}: TransformerLens converted the config as {cfg.original_architecture}, "
            f"expected {architecture}"
        )
    cfg.model_name = name
    # No tokenizer *name*: the tokenizer object is passed in, and a local path here
    # would make TransformerLens re-open it (or the Hub) wherever the config travels.
    cfg.tokenizer_name = None
    return cfg


def _neutral_parent() -> str:
    """A temporary folder whose path TransformerLens cannot mistake for a model name."""
    for candidate in (tempfile.gettempdir(), "/tmp", "/var/tmp"):
        if Path(candidate).is_dir() and not any(t in candidate.lower() for t in _NAME_TRIGGERS):
            return candidate
    raise RuntimeError(
        f"temporary folder {tempfile.gettempdir()!r} contains one of {_NAME_TRIGGERS}, which "
        "TransformerLens reads as a model name; set TMPDIR to another folder"
    )


def load_hf_model(path: str | Path, *, dtype: torch.dtype) -> Any:
    """``AutoModelForCausalLM`` from a local directory: offline, safe formats only."""
    from transformers import AutoModelForCausalLM

    path = Path(path)
    fmt = weights_format(path)
    model = AutoModelForCausalLM.from_pretrained(
        path,
        dtype=dtype,
        local_files_only=True,
        trust_remote_code=False,
        use_safetensors=fmt == "safetensors",
        weights_only=True,
    )
    return model.eval()


def load_hf_tokenizer(*paths: str | Path) -> Any | None:
    """The tokenizer of the first of ``paths`` that has tokenizer files, offline; else None."""
    from transformers import AutoTokenizer

    for path in paths:
        if any((Path(path) / f).is_file() for f in _TOKENIZER_FILES):
            return AutoTokenizer.from_pretrained(
                path, local_files_only=True, trust_remote_code=False
            )
    logger.warning("no tokenizer files in %s; the model will only accept token ids", paths)
    return None


def hooked_from_hf_model(
    hf_model: Any,
    *,
    name: str,
    tokenizer: Any | None,
    device: str,
    dtype: torch.dtype,
    n_ctx: int | None = None,
    processing: Processing = DEFAULT_PROCESSING,
) -> HookedTransformer:
    """Convert an in-memory HF causal LM into a ``HookedTransformer`` (on ``device``).

    The HF model is only read; its weights are renamed by TransformerLens's converter
    for the architecture, then processed with ``processing``.
    """
    architecture = architecture_of(hf_model.config, name)
    converter = _CONVERTERS.get(architecture)
    if converter is None:
        raise ValueError(
            f"{name}: architecture {architecture!r} is not supported; "
            f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    cfg = hooked_config_from_hf(
        hf_model.config,
        name=name,
        device=device,
        dtype=dtype,
        n_ctx=n_ctx,
        fold_ln=processing.fold_ln,
    )
    with torch.no_grad():
        state = converter(hf_model, cfg)
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    model.load_and_process_state_dict(state, **processing.as_kwargs())
    if torch.device(device) != torch.device("cpu"):
        model.to(torch.device(device), print_details=False)
    return model.eval()


def load_hf_checkpoint(
    path: str | Path,
    *,
    device: str,
    dtype: torch.dtype,
    n_ctx: int | None = None,
    processing: Processing = DEFAULT_PROCESSING,
) -> HookedTransformer:
    """Load a local HF checkpoint directory as a HookedTransformer, offline.

    Records a :class:`~idiomlens.models.info.ModelInfo` (``kind="hf_checkpoint"``).
    """
    path = Path(path).expanduser().resolve()
    hf_config = read_hf_config(path)
    fmt = weights_format(path)
    hf_model = load_hf_model(path, dtype=dtype)
    model = hooked_from_hf_model(
        hf_model,
        name=path.name,
        tokenizer=load_hf_tokenizer(path),
        device=device,
        dtype=dtype,
        n_ctx=n_ctx,
        processing=processing,
    )
    info = ModelInfo(
        source=str(path),
        kind="hf_checkpoint",
        architecture=architecture_of(hf_config, path),
        processing=processing,
        weights_format=fmt,
    )
    record_info(model, info)
    return model
