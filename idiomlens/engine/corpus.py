"""Corpus preparation shared by every analysis: align once, check the context length.

:func:`prepare` is the one place where "align unless already aligned" lives. A raw
corpus (an :class:`~idiomlens.IdiomCorpus` or any iterable of
:class:`~idiomlens.IdiomExample`) is aligned with the model's tokenizer; a list of
:class:`~idiomlens.AlignedExample` passes through after its lengths are checked against
the model's context. Either way an example that does not fit raises
:class:`~idiomlens.AlignmentError` naming it, before any forward pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..data.align import AlignedExample, AlignmentError, align

__all__ = ["prepare", "check_layers"]


def prepare(
    model: Any, corpus: Iterable[Any], *, what: str = "the analysis"
) -> list[AlignedExample]:
    """``corpus`` as aligned examples in corpus order, checked against ``model.cfg.n_ctx``.

    Args:
        model: a ``HookedTransformer`` (its tokenizer aligns raw examples).
        corpus: raw examples or already aligned ones (not a mix).
        what: named in the error for an empty corpus.

    Raises:
        ValueError: the corpus is empty, or mixes raw and aligned examples.
        AlignmentError: an example cannot be aligned or is longer than the context;
            the message names its id.

    >>> from idiomlens.models import tiny_model
    >>> from idiomlens.data import IdiomExample
    >>> model = tiny_model()
    >>> [al] = prepare(model, [IdiomExample("a", "He spilled the beans.", (3, 20))])
    >>> prepare(model, [al])[0] is al      # aligned input passes through
    True
    >>> prepare(model, [])
    Traceback (most recent call last):
    ...
    ValueError: the analysis needs a non-empty corpus
    """
    items = list(corpus)
    if not items:
        raise ValueError(f"{what} needs a non-empty corpus")
    aligned = [isinstance(x, AlignedExample) for x in items]
    if not any(aligned):
        return list(align(items, model))
    if not all(aligned):
        raise ValueError("the corpus mixes aligned and raw examples; pass one kind")
    n_ctx = getattr(model.cfg, "n_ctx", None)
    for ex in items:
        if n_ctx is not None and len(ex) > n_ctx:
            raise AlignmentError(
                f"example {ex.id!r}: {len(ex)} tokens, longer than the context ({n_ctx})"
            )
    return items


def check_layers(model: Any, layers: Sequence[int] | None) -> tuple[int, ...]:
    """Validated, sorted, unique layer indices (all layers when ``None``).

    >>> from idiomlens.models import tiny_model
    >>> check_layers(tiny_model(), [1, 0, 1])
    (0, 1)
    """
    n_layers = model.cfg.n_layers
    if layers is None:
        return tuple(range(n_layers))
    out = tuple(sorted(set(int(layer) for layer in layers)))
    if not out or out[0] < 0 or out[-1] >= n_layers:
        raise ValueError(f"layers must be non-empty and within 0..{n_layers - 1}, got {layers}")
    return out
