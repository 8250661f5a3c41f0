"""``load_model``: placeholder until the loading module lands (see issue 2)."""

from __future__ import annotations

from typing import Any

from transformer_lens import HookedTransformer

__all__ = ["load_model"]


def load_model(source: Any, *, device: Any = None, dtype: Any = None) -> HookedTransformer:
    """Return ``source`` if it is already a HookedTransformer (other sources: TODO)."""
    if isinstance(source, HookedTransformer):
        return source
    raise NotImplementedError("load_model: only HookedTransformer inputs are supported yet")
