"""Interactive attention patterns of chosen heads on one example (circuitsvis, offline).

``attention_view(model, example, heads)`` runs the model once (up to the last layer it
needs), takes the chosen heads' patterns and renders them with circuitsvis's
``attention_heads`` widget. Idiom tokens are shown as ``⟦token⟧``. The HTML inlines
circuitsvis's JavaScript bundle (about 1.3 MB), so it works offline in a notebook or as a
saved file; circuitsvis's own notebook display instead pings the internet first and then
loads from a CDN.

Needs the optional extra: ``pip install "idiomlens[viz]"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from .._heads import head_label
from .._io import atomic_write_bytes
from ..data.align import AlignedExample
from ..data.example import IdiomExample
from ..engine import capture, model_device, prepare
from ..interventions.specs import normalize_heads
from ..models.sites import pattern_hook

__all__ = ["AttentionView", "attention_view", "head_patterns"]

#: Marks around idiom tokens in the token labels.
IDIOM_MARKS = ("⟦", "⟧")


@dataclass(frozen=True)
class AttentionView:
    """A rendered, self-contained attention view.

    Attributes:
        html: the widget's HTML with circuitsvis's JavaScript inlined (no network).
        tokens: the token labels shown (idiom tokens marked ``⟦...⟧``).
        head_names: :func:`~idiomlens.head_label` of each panel (``"L1H3"``).
    """

    html: str = field(repr=False)  # ~1 MB of inlined JavaScript: never in a repr
    tokens: tuple[str, ...]
    head_names: tuple[str, ...]

    def _repr_html_(self) -> str:  # Jupyter display
        return self.html

    def save(self, path: str | Path) -> Path:
        """Write a standalone HTML page (atomic) and return its path."""
        page = (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>attention: '
            f"{', '.join(self.head_names)}</title></head><body>\n{self.html}\n</body></html>\n"
        )
        return atomic_write_bytes(path, page.encode("utf-8"))


def _heads(heads: Iterable[Any]) -> tuple[tuple[int, int], ...]:
    """``(layer, head)`` pairs; longer rows (e.g. ``HeadScores.top``'s) keep their first two."""
    pairs = normalize_heads(
        [tuple(item)[:2] if isinstance(item, (tuple, list)) else item for item in heads]
    )
    if not pairs:
        raise ValueError("no heads given")
    return pairs


def head_patterns(
    model: Any, tokens: Sequence[int], heads: Iterable[Any]
) -> Float[Tensor, "head query_pos key_pos"]:
    """The attention patterns of ``heads`` on one token sequence (float32, CPU).

    The forward stops right after the last needed layer's pattern.

    >>> from idiomlens.models import tiny_model
    >>> head_patterns(tiny_model(), [0, 5, 6], [(1, 2), (0, 0)]).shape
    torch.Size([2, 3, 3])
    """
    pairs = _heads(heads)
    cfg = model.cfg
    for layer, head in pairs:
        if not (0 <= layer < cfg.n_layers and 0 <= head < cfg.n_heads):
            raise ValueError(
                f"head {head_label(layer, head)} is not in this model ({cfg.n_layers} layers x "
                f"{cfg.n_heads} heads)"
            )
    layers = sorted({layer for layer, _ in pairs})
    ids = torch.tensor([list(tokens)], device=model_device(model))
    with torch.inference_mode():
        _, acts = capture(model, ids, [pattern_hook(layer) for layer in layers])
    return torch.stack([acts[pattern_hook(layer)][0, head] for layer, head in pairs]).float().cpu()


def attention_view(
    model: Any, example: IdiomExample | AlignedExample, heads: Iterable[Any]
) -> AttentionView:
    """Interactive attention patterns of ``heads`` on ``example``, idiom tokens marked.

    Args:
        model: a ``HookedTransformer`` with a tokenizer (for the token labels).
        example: an :class:`~idiomlens.IdiomExample` (aligned here exactly as
            :func:`~idiomlens.score_heads` aligns it) or an already aligned example.
        heads: ``(layer, head)`` pairs, or rows of :meth:`HeadScores.top`.

    Returns:
        :class:`AttentionView`: displays itself in Jupyter; ``.save(path)`` writes a page.

    Raises:
        ImportError: circuitsvis is missing (install ``idiomlens[viz]``).
        ValueError: a head outside the model, or no heads.
    """
    try:
        from circuitsvis.attention import attention_heads
    except ImportError:
        raise ImportError(
            'attention_view needs circuitsvis: pip install "idiomlens[viz]"'
        ) from None
    if isinstance(example, IdiomExample):
        example = prepare(model, [example], what="attention_view")[0]
    pairs = _heads(heads)
    patterns = head_patterns(model, example.tokens, pairs)
    s, e = example.span
    labels = []
    for pos, token in enumerate(example.tokens):
        text = model.tokenizer.decode([token])
        labels.append(f"{IDIOM_MARKS[0]}{text}{IDIOM_MARKS[1]}" if s <= pos <= e else text)
    names = [head_label(layer, head) for layer, head in pairs]
    rendered = attention_heads(patterns, labels, attention_head_names=names, mask_upper_tri=True)
    return AttentionView(html=rendered.local_src, tokens=tuple(labels), head_names=tuple(names))
