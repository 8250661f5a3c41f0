"""Bad input to probes: one clear error naming the field, row id or layer."""

from __future__ import annotations

import math

import pytest
import torch

from idiomlens.representations import Representations
from idiomlens.representations.probes import ProbeInputError, train_probes


def _reps(n=40, labels=None, layers=2):
    g = torch.Generator().manual_seed(0)
    labels = labels if labels is not None else [i % 2 for i in range(n)]
    return Representations.from_tensors(
        {x: torch.randn(n, 5, generator=g) for x in range(layers)},
        ids=[f"id{i}" for i in range(n)],
        labels={"label": labels, "lang": ["en"] * n},
    )


def test_one_class_only():
    with pytest.raises(ProbeInputError, match=r"labels 'lang': one class only \('en'\)"):
        train_probes(_reps(), "lang", progress=False)


def test_fewer_training_rows_than_classes():
    reps = _reps(labels=[i % 3 for i in range(40)])
    with pytest.raises(ProbeInputError, match="training split has 2 rows for 3 classes"):
        train_probes(reps, split=([0, 1], list(range(2, 40))), progress=False)


def test_training_split_with_one_class():
    reps = _reps()
    with pytest.raises(ProbeInputError, match=r"training split has one class only \(0\)"):
        train_probes(reps, split=([0, 2, 4], [1, 3, 5]), progress=False)


def test_missing_labels_name_the_ids():
    labels = [i % 2 for i in range(40)]
    labels[7], labels[30] = None, math.nan
    with pytest.raises(ProbeInputError, match=r"missing for 2 of 40 rows: ids 'id7', 'id30'"):
        train_probes(_reps(labels=labels), progress=False)


def test_mapping_with_missing_ids():
    reps = _reps()
    labels = {f"id{i}": i % 2 for i in range(40) if i != 12}
    with pytest.raises(ProbeInputError, match=r"missing for 1 of 40 ids: 'id12'"):
        train_probes(reps, labels, progress=False)


def test_unknown_field_lists_the_fields():
    with pytest.raises(ProbeInputError, match=r"no label field 'subject'.*\['label', 'lang'\]"):
        train_probes(_reps(), "subject", progress=False)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_vectors_name_layer_and_id(bad):
    reps = _reps()
    reps.vectors(1)[17, 3] = bad
    with pytest.raises(ProbeInputError, match=r"layer 1: .*NaN or inf .*row 17, id 'id17'"):
        train_probes(reps, progress=False)


def test_wrong_number_of_labels():
    with pytest.raises(ProbeInputError, match="3 labels given for 40 rows"):
        train_probes(_reps(), [0, 1, 0], progress=False)


def test_overlapping_split():
    with pytest.raises(ProbeInputError, match=r"rows 3 are in both"):
        train_probes(_reps(), split=([0, 1, 2, 3], [3, 4]), progress=False)


def test_split_index_out_of_range():
    with pytest.raises(ProbeInputError, match=r"test index 40 is outside 0 .. 39"):
        train_probes(_reps(), split=(list(range(30)), [40]), progress=False)


def test_unknown_layer():
    with pytest.raises(ProbeInputError, match=r"layers \[5\] are not in"):
        train_probes(_reps(), layers=[5], progress=False)
