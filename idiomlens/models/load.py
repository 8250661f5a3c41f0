"""``load_model``: placeholder dispatch until the full loader lands (issue 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformer_lens import HookedTransformer

from .native import DEMO_MODEL_DIR, is_hooked_dir, load_hooked

__all__ = ["load_model", "DEMO_MODEL_NAME"]

#: The name under which the model shipped with the package is loaded.
DEMO_MODEL_NAME = "idiomlens-demo"


def load_model(source: Any, *, device: Any = None, dtype: Any = None) -> HookedTransformer:
    """Return a HookedTransformer from ``source`` (partial: HookedTransformer, saved folder, demo)."""
    if isinstance(source, HookedTransformer):
        return source
    if source == DEMO_MODEL_NAME:
        return load_hooked(DEMO_MODEL_DIR, device=device, dtype=dtype)
    if is_hooked_dir(source):
        return load_hooked(Path(source), device=device, dtype=dtype)
    raise NotImplementedError(f"load_model: source {source!r} is not supported yet")
