"""Config validation (one error naming the field and the file) and sweep expansion."""

from __future__ import annotations

import json

import pytest

from idiomlens.training.lab import LabConfig, LabConfigError, train_lm
from idiomlens.training.lab.config import expand_sweep

GOOD = {
    "model": {"n_layers": 1, "d_model": 16, "attn_only": True},
    "data": {"task": "copy", "length": 3},
    "train": {"steps": 2, "batch_size": 4},
}


def _with(section, key, value):
    raw = json.loads(json.dumps(GOOD))
    raw.setdefault(section, {})[key] = value
    return raw


def _toml(raw):
    def fmt(v):
        return json.dumps(v) if not isinstance(v, bool) else str(v).lower()

    return "\n".join(
        f"[{sec}]\n" + "\n".join(f"{k} = {fmt(v)}" for k, v in vals.items())
        for sec, vals in raw.items()
    )


@pytest.mark.parametrize(
    ("section", "key", "value", "named", "problem"),
    [
        ("model", "n_layrs", 2, "model.n_layrs", "unknown field"),
        ("model", "d_model", "wide", "model.d_model", "expected int"),
        ("model", "attn_only", 1, "model.attn_only", "expected bool"),
        ("data", "task", "copyy", "data.task", "unknown task 'copyy'"),
        ("data", "lenght", 3, "data.lenght", "unknown field for task 'copy'"),
        ("data", "length", 2.5, "data.length", "expected int"),
        ("train", "lr", "fast", "train.lr", "expected float"),
        ("train", "schedule", "wiggly", "train.schedule", "expected Literal"),
        ("train", "stepz", 3, "train.stepz", "unknown field"),
        ("tokenizer", "kind", "morse", "tokenizer.kind", "expected Literal"),
    ],
)
@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_bad_config_is_one_error_naming_field_and_file(
    tmp_path, fmt, section, key, value, named, problem
):
    raw = _with(section, key, value)
    path = tmp_path / f"bad.{fmt}"
    path.write_text(json.dumps(raw) if fmt == "json" else _toml(raw))
    with pytest.raises(LabConfigError) as info:
        train_lm(path, out=tmp_path / "never")
    message = str(info.value)
    assert message.startswith(f"{path}: {named}:"), message
    assert problem in message
    assert "\n" not in message and info.value.__cause__ is None
    assert not (tmp_path / "never").exists()  # nothing was trained or written


def test_other_mistakes_are_named_too(tmp_path):
    with pytest.raises(LabConfigError, match=r"^<dict>: colour: unknown section"):
        LabConfig.from_dict({**GOOD, "colour": {}})
    with pytest.raises(LabConfigError, match="exactly one of data.task and data.path"):
        LabConfig.from_dict({**GOOD, "data": {"task": "copy", "path": "x.txt"}})
    with pytest.raises(LabConfigError, match="model.seed: set train.seed instead"):
        LabConfig.from_dict(_with("model", "seed", 1))
    broken = tmp_path / "broken.toml"
    broken.write_text("[model\nn_layers = 1")
    with pytest.raises(LabConfigError, match=f"^{broken}: not valid TOML"):
        train_lm(broken)
    with pytest.raises(LabConfigError, match="cannot read"):
        train_lm(tmp_path / "missing.json")


def test_config_round_trips_through_its_dict():
    cfg = LabConfig.from_dict(_with("data", "n_symbols", 5))
    assert LabConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.data.params == {"length": 3, "n_symbols": 5}


def test_lists_sweep_as_a_cartesian_product_and_list_fields_do_not():
    raw = _with("train", "lr", [0.1, 0.01])
    raw["model"]["normalization_type"] = ["LN", None]
    raw["model"]["attn_types"] = ["global"]  # a list-typed HookedTransformerConfig field
    runs = expand_sweep(raw)
    assert [n for n, _ in runs] == [
        "normalization_type=LN__lr=0.1",
        "normalization_type=LN__lr=0.01",
        "normalization_type=None__lr=0.1",
        "normalization_type=None__lr=0.01",
    ]
    assert {(c.model["normalization_type"], c.train.lr) for _, c in runs} == {
        ("LN", 0.1), ("LN", 0.01), (None, 0.1), (None, 0.01)
    }  # fmt: skip
    assert all(c.model["attn_types"] == ["global"] for _, c in runs)
    assert expand_sweep(GOOD)[0][0] == ""
