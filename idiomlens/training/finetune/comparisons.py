"""What :func:`~.compare.compare_checkpoints` can compare: one registry entry per analysis.

A :class:`Comparison` names a run-engine analysis (``idiomlens.runs`` registry name) and
says how to read its result as per-example values over *units* (heads, layers):

- ``values(result, **options) -> (ids, [example, unit] values, unit labels)``: the
  per-example level of each unit (NaN where undefined). The default statistic is the
  paired difference ``checkpoint - base`` per example (matched by id); the result also
  reports the mean level of each model, so a figure can show "idiom score of the base's
  top heads vs step".
- ``paired(base, other, **options) -> (ids, [example, unit], unit labels)`` (optional):
  a statistic computed from both results jointly, e.g. the per-point neighbourhood
  overlap of a checkpoint's representations with the base's. When given it replaces the
  difference, and ``values`` may be ``None``.

Both are bootstrapped over examples the same way. Adding a per-layer analysis later is
one :func:`register_comparison` call, e.g. (once ``extract`` is a run-engine analysis
whose result has ``.ids`` and ``.vectors(layer)``)::

    register_comparison(Comparison(
        name="overlap", analysis="extract", axes=("layer",), statistic="overlap",
        params={"site": "resid_post", "pool": "last"}, values=None,
        paired=lambda base, other, k=30: per_point_overlap(base, other, k=k),
    ))

>>> sorted(COMPARISONS)
['dla', 'score']
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from ..._heads import head_label

__all__ = [
    "Comparison",
    "COMPARISONS",
    "register_comparison",
    "get_comparison",
    "head_label",
    "score_values",
    "dla_head_values",
]

Values = tuple[tuple[str, ...], Float[Tensor, "example unit"], tuple[str, ...]]


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """How to compare one analysis across checkpoints (see the module docstring).

    Args:
        name: the registry name (``compare_checkpoints(..., analysis=name)``).
        analysis: the run-engine analysis computed for every model.
        axes: names of the unit axes (``("layer", "head")`` or ``("layer",)``).
        values: per-example levels; ``None`` when only ``paired`` makes sense.
        paired: a joint per-example statistic (replaces ``checkpoint - base``).
        statistic: name of the statistic (``"diff"`` unless ``paired`` says otherwise).
        params: default analysis parameters (the caller's ``params`` update them).
    """

    name: str
    analysis: str
    axes: tuple[str, ...]
    values: Callable[..., Values] | None
    paired: Callable[..., Values] | None = None
    statistic: str = "diff"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.values is None and self.paired is None:
            raise ValueError(f"comparison {self.name!r} needs values or paired")


COMPARISONS: dict[str, Comparison] = {}


def register_comparison(entry: Comparison, *, overwrite: bool = False) -> Comparison:
    """Add ``entry`` under its name (``overwrite=True`` replaces one)."""
    if entry.name in COMPARISONS and not overwrite:
        raise ValueError(f"a comparison named {entry.name!r} is already registered")
    COMPARISONS[entry.name] = entry
    return entry


def get_comparison(name: str | Comparison) -> Comparison:
    """The registered comparison ``name`` (or ``name`` itself when it is one)."""
    if isinstance(name, Comparison):
        return name
    try:
        return COMPARISONS[name]
    except KeyError:
        raise ValueError(
            f"unknown analysis {name!r} for compare_checkpoints; known: {', '.join(sorted(COMPARISONS))}"
        ) from None


def score_values(result: Any, *, feature: str | None = None) -> Values:
    """``HeadScores`` -> per-example combined score (or one ``feature``) per head."""
    values = result._values(feature)  # [example, layer, head]
    n, n_layers, n_heads = values.shape
    units = tuple(head_label(layer, h) for layer in result.layers for h in range(n_heads))
    return tuple(result.ids), values.reshape(n, n_layers * n_heads).float(), units


_HEAD = re.compile(r"^L(\d+)H(\d+)$")


def dla_head_values(result: Any, *, group: str | None = None) -> Values:
    """``DLAResult`` -> per-example direct logit attribution of every head in ``group``
    (default the first group, ``"idiom"`` in next-token mode); NaN where it is empty."""
    g = result.group_index(group or result.groups[0])
    index = [i for i, label in enumerate(result.labels) if _HEAD.match(label)]
    units = tuple(result.labels[i] for i in index)
    values = result.attributions[:, torch.tensor(index, dtype=torch.long), g]
    return tuple(result.ids), values.float(), units


register_comparison(
    Comparison(name="score", analysis="score", axes=("layer", "head"), values=score_values)
)
register_comparison(
    Comparison(name="dla", analysis="dla", axes=("layer", "head"), values=dla_head_values)
)
