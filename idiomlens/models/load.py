"""``load_model``: the one place where idiomlens constructs a model from a source.

Sources, tried in this order:

1. a ``HookedTransformer``: returned as is (moved in place to ``device``/``dtype`` only
   when those are given);
2. ``"idiomlens-demo"`` (:data:`DEMO_MODEL_NAME`): the model shipped with the package;
3. an existing directory, recognised by its files:
   ``hooked_config.json`` (a folder written by ``save_hooked``; weights taken as saved),
   ``adapter_config.json`` (a PEFT adapter, LoRA or IA3, merged into its local base),
   ``config.json`` (a local Hugging Face checkpoint; full fine-tunes and BitFit
   checkpoints are just that);
4. a TransformerLens official model name or alias (``"gpt2"``, ``"pythia-160m"``),
   loaded by ``HookedTransformer.from_pretrained``, which downloads from the Hugging
   Face Hub (or reads its cache); this is the only branch that may use the network.

Anything else fails at once with one ``ValueError`` before the Hub is contacted.
Local directories never touch the network (``local_files_only=True`` everywhere), never
run remote code, and read safetensors first, ``pytorch_model.bin`` only with
``torch.load(weights_only=True)``.

Checkpoints are processed like ``from_pretrained``'s defaults (folded LayerNorm,
centred writing weights and unembedding, folded value biases): log-probs are unchanged,
component outputs are in TransformerLens's usual basis. Pass ``processing=NO_PROCESSING``
for raw weights. What was done is recorded in :func:`~idiomlens.models.model_info`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer
from transformer_lens import loading_from_pretrained as tl_loading

from .hf import load_hf_checkpoint
from .info import DEFAULT_PROCESSING, ModelInfo, Processing, record_info
from .native import DEMO_MODEL_DIR, is_hooked_dir, load_hooked
from .peft_merge import is_adapter_dir, load_adapter_dir

__all__ = ["load_model", "DEMO_MODEL_NAME", "resolve_device", "resolve_dtype", "is_tl_model_name"]

logger = logging.getLogger(__name__)

#: The name under which the model shipped with the package is loaded.
DEMO_MODEL_NAME = "idiomlens-demo"

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "float64": torch.float64,
}


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``"bfloat16"``/``"bf16"``/``torch.bfloat16`` -> ``torch.bfloat16``; None stays None."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(sorted(_DTYPES))}")
    return _DTYPES[key]


def resolve_device(device: str | torch.device | None) -> str:
    """None -> ``"cpu"``; ``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``."""
    if device is None:
        return "cpu"
    if str(device) == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(torch.device(device))


def is_tl_model_name(name: str) -> bool:
    """Whether ``name`` is a TransformerLens official model name or alias (no network)."""
    return name.lower() in tl_loading.make_model_alias_map()


def load_model(
    source: Any,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    base: str | os.PathLike | None = None,
    n_ctx: int | None = None,
    processing: Processing | None = None,
) -> HookedTransformer:
    """Return a ``HookedTransformer`` for ``source`` (see the module docstring for sources).

    Args:
        source: a HookedTransformer, ``"idiomlens-demo"``, a directory (saved
            HookedTransformer, PEFT adapter or Hugging Face checkpoint) or a
            TransformerLens model name.
        device: ``None`` (CPU; a passed-in model is not moved), ``"auto"`` (CUDA when
            available) or any torch device.
        dtype: a torch dtype or its name (``"float32"``, ``"bfloat16"``, ``"float16"``);
            default float32 (a passed-in model and a saved folder keep their dtype). Checkpoints are read
            in this dtype; TransformerLens upcasts to float32 while folding. Loading a
            float16 model on CPU works but is slow and may be inaccurate.
        base: for an adapter directory, the local base checkpoint directory (default:
            the adapter config's ``base_model_name_or_path``).
        n_ctx: context length of the HookedTransformer (checkpoints and names; default
            the checkpoint's, capped at 2048 for local checkpoints).
        processing: weight processing for checkpoints and names (default
            :data:`~idiomlens.models.info.DEFAULT_PROCESSING`); saved folders and
            in-memory models are never re-processed.

    >>> from idiomlens.models import tiny_model
    >>> model = tiny_model()
    >>> load_model(model) is model
    True
    >>> load_model("no-such-model")
    Traceback (most recent call last):
    ...
    ValueError: unknown model 'no-such-model': not a TransformerLens model name and no such directory
    """
    torch_dtype = resolve_dtype(dtype)
    if isinstance(source, HookedTransformer):
        return _passthrough(source, device, torch_dtype, processing)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"load_model: source must be a str, a path or a HookedTransformer, got {type(source).__name__}"
        )
    target = resolve_device(device)
    if source == DEMO_MODEL_NAME:
        _no_processing(source, processing)
        model = load_hooked(DEMO_MODEL_DIR, device=target, dtype=torch_dtype)
        record_info(model, ModelInfo(source=DEMO_MODEL_NAME, kind="demo"))
        return model
    path = Path(source).expanduser()
    if path.exists():
        return _load_directory(path, target, torch_dtype, base, n_ctx, processing)
    if base is not None:
        raise ValueError(
            f"load_model: base= is only for adapter directories, and {source!r} is none"
        )
    if isinstance(source, str) and is_tl_model_name(source):
        return _load_tl_name(source, target, torch_dtype or torch.float32, n_ctx, processing)
    raise ValueError(
        f"unknown model {str(source)!r}: not a TransformerLens model name and no such directory"
    )


def _passthrough(
    model: HookedTransformer,
    device: str | torch.device | None,
    dtype: torch.dtype | None,
    processing: Processing | None,
) -> HookedTransformer:
    _no_processing("a HookedTransformer", processing)
    if device is not None:
        model.to(torch.device(resolve_device(device)), print_details=False)
    if dtype is not None and dtype != model.cfg.dtype:
        model.to(dtype, print_details=False)
    return model


def _no_processing(what: str, processing: Processing | None) -> None:
    if processing is not None:
        raise ValueError(
            f"load_model: processing= applies to checkpoints and model names, not to {what} "
            "(its weights are used as they are)"
        )


def _load_directory(
    path: Path,
    device: str,
    dtype: torch.dtype | None,
    base: str | os.PathLike | None,
    n_ctx: int | None,
    processing: Processing | None,
) -> HookedTransformer:
    if not path.is_dir():
        raise ValueError(f"load_model: {path} is a file, not a model directory")
    if base is not None and not is_adapter_dir(path):
        raise ValueError(f"load_model: base= is only for adapter directories, and {path} is none")
    if is_hooked_dir(path):
        _no_processing(str(path), processing)
        model = load_hooked(path, device=device, dtype=dtype)
        record_info(model, ModelInfo(source=str(path.resolve()), kind="hooked_dir"))
        return model
    flags = processing or DEFAULT_PROCESSING
    dtype = dtype or torch.float32
    if is_adapter_dir(path):
        return load_adapter_dir(
            path, base=base, device=device, dtype=dtype, n_ctx=n_ctx, processing=flags
        )
    if (path / "config.json").is_file():
        return load_hf_checkpoint(path, device=device, dtype=dtype, n_ctx=n_ctx, processing=flags)
    raise FileNotFoundError(
        f"load_model: {path} is not a model directory: it has no config.json (Hugging Face "
        "checkpoint), adapter_config.json (PEFT adapter) or hooked_config.json "
        "(saved HookedTransformer)"
    )


def _load_tl_name(
    name: str, device: str, dtype: torch.dtype, n_ctx: int | None, processing: Processing | None
) -> HookedTransformer:
    """The real ``from_pretrained`` path (Hub or its cache); not exercised offline."""
    flags = processing or DEFAULT_PROCESSING
    official = tl_loading.get_official_model_name(name)
    logger.info("loading %s (%s) with HookedTransformer.from_pretrained", name, official)
    model = HookedTransformer.from_pretrained(
        official, device=device, dtype=dtype, n_ctx=n_ctx, **flags.as_kwargs()
    )
    record_info(
        model,
        ModelInfo(
            source=name,
            kind="transformer_lens",
            architecture=model.cfg.original_architecture,
            processing=flags,
        ),
    )
    return model.eval()
