"""Head labels and rankings: the one place ``"L{layer}H{head}"`` is built and parsed.

Labels:

- :func:`head_label` ``(1, 3) -> "L1H3"`` (:func:`mlp_label` ``2 -> "L2_mlp"``,
  :func:`layer_label` ``2 -> "L2"``); :func:`parse_head` reads ``"L1H3"``,
  ``"l1h3"`` or ``"1.3"`` back (the CLI's ``--heads`` syntax);
- :func:`cell_label` names a cell of a ``[layer, pos, head]``-like grid (``"L1P5H3"``,
  ``"L1P5"``), :func:`label_parts` reads any of these labels (and ``"L2_mlp"``) into
  its layer / position / head, and returns ``None`` parts for other components
  (``"embed"``, ``"bias"``).

Rankings: every result's ``top(k)`` returns a :class:`Ranking`, a list of records that
all expose ``.label``, ``.layer``, ``.head`` and ``.value`` (``None`` where a component
is not a head, e.g. ``embed`` or an MLP). Two record types keep the tuple layouts
callers already unpack:

- :class:`HeadRank` ``(layer, head, value)`` for per-head results (``HeadScores``,
  ``HeadDetection``, ``ScoreComparison``);
- :class:`ComponentRank` ``(label, value)`` for results over named components or cells
  (``DLAResult``, ``PatchingResult``, ``AblationResult`` conditions).

``Ranking.to_dataframe()`` has the same columns for both: ``rank, label, layer, head,
value``.

>>> head_label(1, 3), parse_head("L1H3"), parse_head("1.3")
('L1H3', (1, 3), (1, 3))
>>> r = Ranking([HeadRank(0, 2, 0.5), HeadRank(1, 0, 0.25)])
>>> [(x.label, x.value) for x in r], r.heads()
([('L0H2', 0.5), ('L1H0', 0.25)], [(0, 2), (1, 0)])
>>> ComponentRank("L3_mlp", 1.0).layer, ComponentRank("embed", 1.0).head is None
(3, True)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

__all__ = [
    "head_label",
    "layer_label",
    "mlp_label",
    "parse_head",
    "cell_label",
    "label_parts",
    "head_of",
    "HeadRank",
    "ComponentRank",
    "Ranking",
    "rank_values",
]

_LETTERS = {"layer": "L", "pos": "P", "head": "H"}
_CELL = re.compile(r"^L(?P<layer>\d+)(?:P(?P<pos>\d+))?(?:H(?P<head>\d+)|_mlp)?$")
_HEAD_TEXT = re.compile(r"^\s*(?:[Ll](\d+)[Hh](\d+)|(\d+)\.(\d+))\s*$")


def head_label(layer: int, head: int) -> str:
    """``"L{layer}H{head}"``, the name of a head everywhere in idiomlens."""
    return f"L{int(layer)}H{int(head)}"


def layer_label(layer: int) -> str:
    """``"L{layer}"``, the name of a layer as a unit (per-layer comparisons, figures)."""
    return f"L{int(layer)}"


def mlp_label(layer: int) -> str:
    """``"L{layer}_mlp"``, the name of a layer's MLP (DLA components); see :func:`label_parts`."""
    return f"L{int(layer)}_mlp"


def parse_head(text: str) -> tuple[int, int]:
    """``"L1H3"`` / ``"l1h3"`` / ``"1.3"`` -> ``(1, 3)``; ``ValueError`` otherwise.

    >>> parse_head("one.two")
    Traceback (most recent call last):
    ...
    ValueError: a head is LAYER.HEAD (e.g. 1.3) or L1H3, got 'one.two'
    """
    m = _HEAD_TEXT.match(str(text))
    if not m:
        raise ValueError(f"a head is LAYER.HEAD (e.g. 1.3) or L1H3, got {text!r}")
    layer, head = (m[1], m[2]) if m[1] is not None else (m[3], m[4])
    return int(layer), int(head)


def cell_label(axes: Sequence[str], index: Sequence[int]) -> str:
    """Label of one cell of a grid with ``axes`` (names from ``layer``, ``pos``, ``head``).

    >>> cell_label(("layer", "pos", "head"), (1, 5, 3)), cell_label(("layer", "pos"), (2, 0))
    ('L1P5H3', 'L2P0')
    """
    if len(axes) != len(index):
        raise ValueError(f"{len(index)} indices for axes {tuple(axes)}")
    order = sorted(zip(axes, index, strict=True), key=lambda ai: list(_LETTERS).index(ai[0]))
    return "".join(f"{_LETTERS[a]}{int(i)}" for a, i in order)


def label_parts(label: str) -> tuple[int | None, int | None, int | None]:
    """``(layer, pos, head)`` of a head / cell / MLP label; ``None`` for what it lacks.

    >>> label_parts("L1P5H3"), label_parts("L2_mlp"), label_parts("embed")
    ((1, 5, 3), (2, None, None), (None, None, None))
    """
    m = _CELL.match(label)
    if not m:
        return None, None, None
    return tuple(None if m[g] is None else int(m[g]) for g in ("layer", "pos", "head"))  # type: ignore[return-value]


def head_of(label: str) -> tuple[int, int] | None:
    """``(layer, head)`` if ``label`` names exactly one head (``"L1H3"``), else ``None``."""
    layer, pos, head = label_parts(label)
    return None if layer is None or head is None or pos is not None else (layer, head)


class HeadRank(NamedTuple):
    """One ranked head; unpacks as ``(layer, head, value)``."""

    layer: int
    head: int
    value: float

    @property
    def label(self) -> str:
        return head_label(self.layer, self.head)


class ComponentRank(NamedTuple):
    """One ranked component or cell; unpacks as ``(label, value)``.

    ``layer`` / ``head`` are read from the label (``None`` for ``embed``, ``bias``, a
    named condition ...).
    """

    label: str
    value: float

    @property
    def layer(self) -> int | None:
        return label_parts(self.label)[0]

    @property
    def head(self) -> int | None:
        return label_parts(self.label)[2]


class Ranking(list):
    """The list ``top(k)`` returns: :class:`HeadRank` or :class:`ComponentRank` records,
    best first."""

    def heads(self) -> list[tuple[int, int]]:
        """``(layer, head)`` of the records that are heads, in rank order."""
        return [(r.layer, r.head) for r in self if r.layer is not None and r.head is not None]

    def labels(self) -> list[str]:
        return [r.label for r in self]

    def to_dataframe(self) -> Any:
        """Columns ``rank, label, layer, head, value`` (nullable integer layer / head)."""
        import pandas as pd

        frame = pd.DataFrame(
            {
                "rank": list(range(len(self))),
                "label": [r.label for r in self],
                "layer": pd.array([r.layer for r in self], dtype="Int64"),
                "head": pd.array([r.head for r in self], dtype="Int64"),
                "value": [float(r.value) for r in self],
            }
        )
        return frame


def rank_values(
    values: Iterable[float], labels: Sequence[str], k: int, *, absolute: bool = False
) -> Ranking:
    """The ``k`` largest ``values`` (by magnitude if ``absolute``) as :class:`ComponentRank`.

    ``NaN`` ranks last; ties go to the earlier label.

    >>> rank_values([0.5, float("nan"), -2.0], ["a", "b", "c"], 2, absolute=True)
    [ComponentRank(label='c', value=-2.0), ComponentRank(label='a', value=0.5)]
    """
    vals = [float(v) for v in values]
    if len(vals) != len(labels):
        raise ValueError(f"{len(vals)} values for {len(labels)} labels")

    def key(i: int) -> tuple[bool, float, int]:
        v = abs(vals[i]) if absolute else vals[i]
        return (v != v, -v if v == v else 0.0, i)  # NaN last, then descending, then order

    order = sorted(range(len(vals)), key=key)[: max(0, k)]
    return Ranking(ComponentRank(labels[i], vals[i]) for i in order)
