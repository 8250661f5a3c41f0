"""Where a probe's labels come from, how rows are split, and the control tasks.

- :func:`resolve_labels`: one label per row of a ``Representations`` from a field name
  (``"label"``, ``"subject"``, ``"language"``, a per-token field such as ``"in_idiom"`` or
  ``"pos"``), an explicit sequence, or a mapping ``{row id or example id: label}``.
- :func:`make_split`: a seeded stratified train/test split of example rows, a split by
  example for token rows (tokens of one sentence never sit on both sides), or a given
  ``(train_index, test_index)`` pair, checked.
- :func:`control_labels`: the control task (METHODS.md "Probes"): for example pools the
  labels permuted by a seeded shuffle (within the training and within the test rows, so
  both keep their class counts); for ``pool="tokens"`` Hewitt & Liang's control, where
  every token type gets one fixed random label drawn from the training label distribution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

__all__ = [
    "ProbeInputError",
    "resolve_labels",
    "encode_labels",
    "make_split",
    "control_labels",
]


class ProbeInputError(ValueError):
    """Bad input to a probe (labels, split, vectors); the message names the row, field or layer."""


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _first(items: Sequence[Any], k: int = 5) -> str:
    shown = ", ".join(repr(x) for x in items[:k])
    return shown + (f", ... ({len(items)} in all)" if len(items) > k else "")


def resolve_labels(reps: Any, labels: Any = None) -> tuple[list[Any], str | None]:
    """One label per row of ``reps``, and the field name it came from (``None`` if given).

    ``labels`` is ``None`` (the ``label`` field), a field name of ``reps.labels``, a
    sequence with one value per row (or per example, for token rows: repeated on each
    token), or a mapping keyed by row id (``reps.row_ids``) or example id.

    >>> import torch
    >>> from idiomlens.representations import Representations
    >>> reps = Representations.from_tensors({0: torch.zeros(2, 3)}, ids=["a", "b"],
    ...                                     labels={"label": ["x", None]})
    >>> resolve_labels(reps)
    Traceback (most recent call last):
    ...
    idiomlens.representations.probes.labels.ProbeInputError: labels 'label' are missing for 1 of 2 rows: ids 'b'
    """
    row_ids = reps.row_ids
    name: str | None = None
    if labels is None or isinstance(labels, str):
        name = "label" if labels is None else labels
        if name not in reps.labels:
            raise ProbeInputError(
                f"no label field {name!r} in the representations; fields: {sorted(reps.labels)}"
            )
        values = list(reps.labels[name])
    elif isinstance(labels, Mapping):
        values = _from_mapping(reps, labels, row_ids)
    else:
        values = labels.tolist() if isinstance(labels, Tensor) else list(labels)
        if reps.example_index is not None and len(values) == len(reps.ids) != reps.n_rows:
            values = [values[e] for e in reps.example_index.tolist()]
        if len(values) != reps.n_rows:
            raise ProbeInputError(f"{len(values)} labels given for {reps.n_rows} rows")
    values = [v.item() if hasattr(v, "item") else v for v in values]
    gaps = [row_ids[i] for i, v in enumerate(values) if _missing(v)]
    if gaps:
        what = repr(name) if name is not None else "given"
        raise ProbeInputError(
            f"labels {what} are missing for {len(gaps)} of {len(values)} rows: ids {_first(gaps)}"
        )
    return values, name


def _from_mapping(reps: Any, labels: Mapping, row_ids: Sequence[str]) -> list[Any]:
    if all(r in labels for r in row_ids):
        return [labels[r] for r in row_ids]
    if reps.example_index is not None and all(i in labels for i in reps.ids):
        return [labels[reps.ids[e]] for e in reps.example_index.tolist()]
    keys = row_ids if reps.example_index is None else reps.ids
    gaps = [r for r in keys if r not in labels]
    raise ProbeInputError(f"labels are missing for {len(gaps)} of {len(keys)} ids: {_first(gaps)}")


def _sort_key(value: Any) -> tuple[str, Any]:
    return (type(value).__name__, value)


def encode_labels(values: Sequence[Any], train_index: Tensor) -> tuple[tuple, Tensor]:
    """Classes seen in the training rows (sorted, as ``numpy.unique``) and every row's code.

    Rows whose label never occurs in the training rows get code ``-1`` (never predicted).

    >>> encode_labels(["b", "a", "c", "a"], torch.tensor([0, 1, 3]))
    (('a', 'b'), tensor([ 1,  0, -1,  0]))
    """
    classes = tuple(sorted({values[i] for i in train_index.tolist()}, key=_sort_key))
    code = {c: k for k, c in enumerate(classes)}
    return classes, torch.tensor([code.get(v, -1) for v in values], dtype=torch.long)


def _check_index(index: Any, n_rows: int, what: str) -> Tensor:
    t = torch.as_tensor(index, dtype=torch.long).reshape(-1)
    if t.numel() == 0:
        raise ProbeInputError(f"the {what} split is empty")
    bad = t[(t < 0) | (t >= n_rows)]
    if bad.numel():
        raise ProbeInputError(f"{what} index {int(bad[0])} is outside 0 .. {n_rows - 1}")
    if torch.unique(t).numel() != t.numel():
        raise ProbeInputError(f"the {what} index repeats rows")
    return t


def make_split(
    values: Sequence[Any],
    *,
    split: tuple[Any, Any] | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
    groups: Int[Tensor, " row"] | None = None,
) -> tuple[Int[Tensor, " train"], Int[Tensor, " test"]]:
    """``(train_index, test_index)``, sorted row indices.

    With ``split`` given it is checked (in range, no repeats, disjoint) and returned.
    Otherwise, with ``groups`` (the example of each token row) whole examples are drawn
    for the test side; without, each class contributes ``round(test_fraction * n_c)`` of
    its rows (at least one stays in training), drawn with a ``torch.Generator(seed)``.

    >>> train, test = make_split(["a"] * 6 + ["b"] * 2, test_fraction=0.5)
    >>> len(train), len(test)
    (4, 4)
    """
    n = len(values)
    if split is not None:
        train = _check_index(split[0], n, "train")
        test = _check_index(split[1], n, "test")
        both = set(train.tolist()) & set(test.tolist())
        if both:
            raise ProbeInputError(
                f"rows {_first(sorted(both))} are in both the train and test split"
            )
        return train.sort().values, test.sort().values
    if not 0.0 < test_fraction < 1.0:
        raise ProbeInputError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    gen = torch.Generator().manual_seed(seed)
    test_rows: list[Tensor] = []
    if groups is not None:
        names = torch.unique(groups)
        n_test = min(max(1, round(test_fraction * len(names))), len(names) - 1)
        if n_test < 1:
            raise ProbeInputError("token rows of a single example cannot be split by example")
        chosen = names[torch.randperm(len(names), generator=gen)[:n_test]]
        is_test = torch.isin(groups, chosen)
    else:
        codes = torch.tensor(_codes(values))
        for c in range(int(codes.max()) + 1):
            rows = (codes == c).nonzero()[:, 0]
            n_test = min(math.floor(test_fraction * len(rows) + 0.5), len(rows) - 1)
            test_rows.append(rows[torch.randperm(len(rows), generator=gen)[:n_test]])
        is_test = torch.zeros(n, dtype=torch.bool)
        is_test[torch.cat(test_rows)] = True
    if not bool(is_test.any()):
        raise ProbeInputError(f"{n} rows leave no test rows at test_fraction={test_fraction}")
    return (~is_test).nonzero()[:, 0], is_test.nonzero()[:, 0]


def _codes(values: Sequence[Any]) -> list[int]:
    classes = {c: k for k, c in enumerate(sorted(set(values), key=_sort_key))}
    return [classes[v] for v in values]


def control_labels(
    codes: Int[Tensor, " row"],
    train_index: Int[Tensor, " train"],
    test_index: Int[Tensor, " test"],
    *,
    seed: int = 0,
    token_ids: Int[Tensor, " row"] | None = None,
) -> Int[Tensor, " row"]:
    """Control-task codes for every row (METHODS.md "Probes").

    Without ``token_ids``: the training rows' codes permuted among the training rows and
    the test rows' among the test rows (a seeded shuffle). With ``token_ids``: each token
    type gets one code drawn from the training rows' class frequencies.

    >>> codes = torch.tensor([0, 0, 1, 1, 0, 1])
    >>> ctrl = control_labels(codes, torch.arange(4), torch.arange(4, 6))
    >>> sorted(ctrl[:4].tolist()) == sorted(codes[:4].tolist())
    True
    """
    gen = torch.Generator().manual_seed(seed + 7919)  # not the split's stream
    out = codes.clone()
    if token_ids is None:
        for index in (train_index, test_index):
            out[index] = codes[index][torch.randperm(len(index), generator=gen)]
        return out
    train_codes = codes[train_index]
    freq = torch.bincount(train_codes[train_codes >= 0]).double()
    types, inverse = torch.unique(token_ids, return_inverse=True)
    drawn = torch.multinomial(freq, len(types), replacement=True, generator=gen)
    return drawn[inverse]
