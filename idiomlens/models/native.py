"""Save and load a ``HookedTransformer`` as a self-contained folder, offline.

The folder holds ``hooked_config.json`` (the ``HookedTransformerConfig`` as a dict),
``model.safetensors`` (the state dict exactly as in memory: no weight processing is
applied on load) and the tokenizer files. This is how idiomlens ships its demo model
and how models trained with idiomlens are stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

__all__ = ["save_hooked", "load_hooked", "is_hooked_dir", "CONFIG_FILE", "DEMO_MODEL_DIR"]

CONFIG_FILE = "hooked_config.json"
WEIGHTS_FILE = "model.safetensors"
#: Where the demo model that ships with the package lives.
DEMO_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo_model"


def is_hooked_dir(path: str | Path) -> bool:
    """Whether ``path`` is a folder written by :func:`save_hooked`."""
    return (Path(path) / CONFIG_FILE).is_file()


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def save_hooked(model: HookedTransformer, path: str | Path) -> Path:
    """Write ``model`` (config, weights, tokenizer) to folder ``path``; returns it.

    >>> import tempfile
    >>> from idiomlens.models import tiny_model
    >>> folder = save_hooked(tiny_model(), tempfile.mkdtemp())
    >>> load_hooked(folder).cfg.n_layers
    2
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = dict(model.cfg.to_dict())  # to_dict() may return the live __dict__
    cfg["dtype"] = _dtype_name(model.cfg.dtype)
    cfg.pop("device", None)
    cfg.pop("n_devices", None)
    (path / CONFIG_FILE).write_text(json.dumps(cfg, indent=2, sort_keys=True, default=str))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, path / WEIGHTS_FILE)
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(path)
    return path


def load_hooked(
    path: str | Path, *, device: str | torch.device | None = None, dtype: Any = None
) -> HookedTransformer:
    """Load a folder written by :func:`save_hooked`, fully offline."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not is_hooked_dir(path):
        raise FileNotFoundError(f"{path} is not a saved HookedTransformer (no {CONFIG_FILE})")
    raw = json.loads((path / CONFIG_FILE).read_text())
    raw["dtype"] = getattr(torch, raw.get("dtype", "float32"))
    raw["device"] = str(device or "cpu")
    known = HookedTransformerConfig.__dataclass_fields__
    cfg = HookedTransformerConfig(**{k: v for k, v in raw.items() if k in known and _init_field(k)})
    tokenizer = None
    if (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    state = load_file(path / WEIGHTS_FILE)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(("IGNORE", "mask"))]
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not match the config (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    if device is not None and torch.device(device) != torch.device("cpu"):
        model.to(torch.device(device))
    if dtype is not None:
        model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
    return model.eval()


def _init_field(name: str) -> bool:
    return HookedTransformerConfig.__dataclass_fields__[name].init
