"""Shared type aliases and the ``HookedModel`` protocol.

Axis names follow TransformerLens everywhere:
``batch pos d_model head_index query_pos key_pos d_vocab layer``; idiomlens adds
``example`` (an item of a corpus, in corpus order), ``feature`` and ``component``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from jaxtyping import Bool, Float, Int
from torch import Tensor

__all__ = [
    "Bool",
    "Float",
    "Int",
    "Tensor",
    "HookedModel",
    "Tokens",
    "Mask",
    "Pattern",
    "Logits",
]

#: Token ids of a padded batch.
Tokens = Int[Tensor, "batch pos"]
#: A boolean mask over the positions of a padded batch (``True`` = selected).
Mask = Bool[Tensor, "batch pos"]
#: Attention patterns of every head of one layer.
Pattern = Float[Tensor, "batch head_index query_pos key_pos"]
#: Model output logits.
Logits = Float[Tensor, "batch pos d_vocab"]


@runtime_checkable
class HookedModel(Protocol):
    """The surface of ``HookedTransformer`` that idiomlens relies on.

    It is the part TransformerLens 3.x's ``HookedTransformer`` and 4.x's
    ``TransformerBridge`` (compatibility mode) share, so a move to 4.x touches only
    ``idiomlens.models``.
    """

    cfg: Any
    tokenizer: Any

    def __call__(self, input: Any, *args: Any, **kwargs: Any) -> Any: ...

    def run_with_hooks(self, *args: Any, **kwargs: Any) -> Any: ...

    def run_with_cache(self, *args: Any, **kwargs: Any) -> Any: ...

    def hooks(self, *args: Any, **kwargs: Any) -> Any: ...
