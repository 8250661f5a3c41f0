"""The lab's config: four sections, validated on construction, and sweeps.

Layout (a dict, a TOML or a JSON file)::

    [model]      # any HookedTransformerConfig field; d_vocab and n_ctx default to the data's
    n_layers = 2
    d_model = 64
    attn_only = true
    [data]       # a registered task and its parameters, or a file
    task = "copy"
    length = 6
    [tokenizer]  # kind = "auto" | "task" | "char" | "bpe" | "hf"
    [train]
    steps = 500
    lr = [1e-3, 3e-3]   # a list where one value is expected: a sweep axis

A list given where the field takes a single value makes that field a sweep axis; the
runs are the cartesian product of all axes (:func:`expand_sweep`). Every mistake
(unknown section or field, unknown task, a value of the wrong type) is one
:class:`LabConfigError` naming the field and the file.
"""

from __future__ import annotations

import itertools
import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import tomllib
import torch

from .tasks import TASKS

__all__ = [
    "LabConfigError",
    "DataConfig",
    "TokenizerConfig",
    "TrainSettings",
    "LabConfig",
    "read_config",
    "expand_sweep",
]

SECTIONS = ("model", "data", "tokenizer", "train")


class LabConfigError(ValueError):
    """A bad lab config: the message names the file and the field."""


def type_ok(value: Any, tp: Any) -> bool:
    """Whether ``value`` (parsed from JSON/TOML) fits annotation ``tp``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(type_ok(value, t) for t in typing.get_args(tp))
    if origin is Literal:
        return value in typing.get_args(tp)
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is torch.dtype:
        return isinstance(value, torch.dtype) or (
            isinstance(value, str)
            and isinstance(getattr(torch, value.removeprefix("torch."), None), torch.dtype)
        )
    if origin is not None:
        return isinstance(value, origin)
    return isinstance(value, tp)


def _describe(tp: Any) -> str:
    return str(tp).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _check_types(obj: Any, section: str) -> None:
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value = getattr(obj, f.name)
        if not type_ok(value, hints[f.name]):
            raise LabConfigError(
                f"{section}.{f.name}: expected {_describe(hints[f.name])}, got {value!r}"
            )


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Where samples come from: a registered ``task`` (its parameters in ``params``) or
    a ``path`` (text file with one sample per line, IdiomCorpus ``.jsonl`` or a saved
    ``datasets.Dataset`` folder; ``format`` overrides the guess)."""

    task: str | None = None
    path: str | None = None
    format: Literal["auto", "text", "corpus", "dataset"] = "auto"
    text_field: str = "text"
    n_train: int = 10000
    n_val: int = 512
    val_fraction: float = 0.1
    truncate: bool = False
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_types(self, "data")
        if (self.task is None) == (self.path is None):
            raise LabConfigError("data: give exactly one of data.task and data.path")
        if self.task is not None:
            if self.task not in TASKS:
                raise LabConfigError(
                    f"data.task: unknown task {self.task!r}; registered: {sorted(TASKS)}"
                )
            spec = TASKS[self.task]
            for name, value in self.params.items():
                if name not in spec.defaults:
                    known = sorted(set(spec.defaults) | {f.name for f in fields(self)} - {"params"})
                    raise LabConfigError(
                        f"data.{name}: unknown field for task {self.task!r}; known: {known}"
                    )
                if not type_ok(value, spec.types[name]):
                    raise LabConfigError(
                        f"data.{name}: expected {_describe(spec.types[name])}, got {value!r}"
                    )
        elif self.params:
            raise LabConfigError(f"data.{sorted(self.params)[0]}: unknown field for file data")
        if self.n_train < 1 or self.n_val < 1 or not 0 < self.val_fraction < 1:
            raise LabConfigError("data: n_train and n_val must be >= 1 and 0 < val_fraction < 1")


@dataclass(frozen=True, kw_only=True)
class TokenizerConfig:
    """``kind``: ``auto`` (``task`` for tasks, ``char`` for files), ``task`` (the task's
    symbols), ``char``, ``bpe`` (byte-level BPE of ``vocab_size`` trained on the training
    split) or ``hf`` (a local Hugging Face tokenizer folder ``path``)."""

    kind: Literal["auto", "task", "char", "bpe", "hf"] = "auto"
    vocab_size: int = 512
    path: str | None = None

    def __post_init__(self) -> None:
        _check_types(self, "tokenizer")
        if (self.kind == "hf") != (self.path is not None):
            raise LabConfigError("tokenizer.path: needed for kind 'hf' and only for it")
        if self.kind == "bpe" and self.vocab_size < 257:
            raise LabConfigError(
                f"tokenizer.vocab_size: must exceed the 256 bytes, got {self.vocab_size}"
            )


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """Optimisation: AdamW with warm-up then ``schedule``; ``steps`` or ``epochs``."""

    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 0
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float | None = 1.0
    loss: Literal["scored", "all"] = "scored"
    eval_every: int = 100
    log_every: int | None = None
    checkpoint_every: int | None = None
    eval_batch_size: int = 512
    seed: int = 0
    threads: int = 1
    deterministic: bool = True
    device: str = "cpu"
    progress: bool = True
    keep_checkpoint: bool = False
    tensorboard: bool = False
    wandb: str | None = None

    def __post_init__(self) -> None:
        _check_types(self, "train")
        if (self.steps is None) == (self.epochs is None):
            raise LabConfigError("train: give exactly one of train.steps and train.epochs")
        for name in (
            "steps",
            "epochs",
            "batch_size",
            "eval_every",
            "log_every",
            "checkpoint_every",
            "threads",
        ):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise LabConfigError(f"train.{name}: must be positive, got {value}")
        if self.lr <= 0 or self.warmup < 0:
            raise LabConfigError("train.lr must be positive and train.warmup >= 0")


@dataclass(frozen=True, kw_only=True)
class LabConfig:
    """A complete lab config; ``model`` holds ``HookedTransformerConfig`` fields."""

    model: dict[str, Any]
    data: DataConfig
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    train: TrainSettings = field(default_factory=lambda: TrainSettings(steps=1000))
    name: str = "run"

    def __post_init__(self) -> None:
        hints = _model_hints()
        for key, value in self.model.items():
            if key not in hints:
                raise LabConfigError(
                    f"model.{key}: unknown field (not a HookedTransformerConfig field)"
                )
            if key in ("seed", "device"):
                raise LabConfigError(f"model.{key}: set train.{key} instead")
            if not type_ok(value, hints[key]):
                raise LabConfigError(
                    f"model.{key}: expected {_describe(hints[key])}, got {value!r}"
                )
        for key in ("n_layers", "d_model"):
            if key not in self.model:
                raise LabConfigError(f"model.{key}: required")

    def to_dict(self) -> dict[str, Any]:
        """The nested dict this config reads back from (``LabConfig.from_dict``)."""
        data = asdict(self.data)
        data.update(data.pop("params"))
        return {
            "name": self.name,
            "model": dict(self.model),
            "data": {k: v for k, v in data.items() if v is not None},
            "tokenizer": {k: v for k, v in asdict(self.tokenizer).items() if v is not None},
            "train": {k: v for k, v in asdict(self.train).items() if v is not None},
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "<dict>") -> LabConfig:
        """Validate a nested dict (no sweep lists); errors are prefixed with ``source``."""
        try:
            return _from_dict(raw)
        except LabConfigError as err:
            raise LabConfigError(f"{source}: {err}") from None


def _model_hints() -> dict[str, Any]:
    from transformer_lens import HookedTransformerConfig

    init = {k for k, f in HookedTransformerConfig.__dataclass_fields__.items() if f.init}
    return {k: v for k, v in typing.get_type_hints(HookedTransformerConfig).items() if k in init}


def _section(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, Mapping):
        raise LabConfigError(f"{name}: expected a table of fields, got {value!r}")
    return dict(value)


def _build(cls: type, section: str, values: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise LabConfigError(f"{section}.{unknown[0]}: unknown field; known: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    for key, value in values.items():  # also checked in __post_init__; here first, so that
        if not type_ok(value, hints[key]):  # a run-time type checker on __init__ cannot pre-empt it
            raise LabConfigError(
                f"{section}.{key}: expected {_describe(hints[key])}, got {value!r}"
            )
    return cls(**values)


def _from_dict(raw: Mapping[str, Any]) -> LabConfig:
    unknown = sorted(set(raw) - {*SECTIONS, "name"})
    if unknown:
        raise LabConfigError(f"{unknown[0]}: unknown section; sections: {list(SECTIONS)}")
    if "data" not in raw or "model" not in raw:
        raise LabConfigError("the [model] and [data] sections are required")
    data = _section(raw, "data")
    data_fields = {f.name for f in fields(DataConfig)} - {"params"}
    params = {k: data.pop(k) for k in list(data) if k not in data_fields}
    train = _section(raw, "train")
    if "steps" not in train and "epochs" not in train:
        train["steps"] = 1000
    name = raw.get("name", "run")
    if not isinstance(name, str):
        raise LabConfigError(f"name: expected str, got {name!r}")
    return LabConfig(
        model=_section(raw, "model"),
        data=_build(DataConfig, "data", {**data, "params": params}),
        tokenizer=_build(TokenizerConfig, "tokenizer", _section(raw, "tokenizer")),
        train=_build(TrainSettings, "train", train),
        name=name,
    )


def read_config(source: str | Path | Mapping[str, Any] | LabConfig) -> tuple[dict[str, Any], str]:
    """The raw nested dict of a config (a path to ``.toml``/``.json``, a dict or a
    :class:`LabConfig`) and the name errors should give for it."""
    if isinstance(source, LabConfig):
        return source.to_dict(), "<LabConfig>"
    if isinstance(source, Mapping):
        return dict(source), "<dict>"
    path = Path(source)
    try:
        text = path.read_text()
    except OSError as err:
        raise LabConfigError(f"{path}: cannot read the config ({err.strerror})") from None
    try:
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise LabConfigError(
            f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {err}"
        ) from None
    if not isinstance(raw, dict):
        raise LabConfigError(f"{path}: the config must be a table of sections")
    return raw, str(path)


def _field_type(section: str, key: str, data: Mapping[str, Any]) -> Any:
    """The annotation of ``section.key`` (None when unknown: validation reports it)."""
    if section == "model":
        return _model_hints().get(key)
    cls = {"data": DataConfig, "tokenizer": TokenizerConfig, "train": TrainSettings}[section]
    hints = typing.get_type_hints(cls)
    if key in hints:
        return hints[key]
    task = TASKS.get(data.get("task")) if section == "data" else None
    return task.types.get(key) if task else None


def _is_axis(value: Any, tp: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and (tp is None or not type_ok(value, tp) or all(isinstance(v, list) for v in value))
    )


def _label(key: str, value: Any) -> str:
    text = re.sub(r"[^A-Za-z0-9.+-]+", "_", str(value)).strip("_")
    return f"{key}={text}"


def expand_sweep(raw: Mapping[str, Any], source: str = "<dict>") -> list[tuple[str, LabConfig]]:
    """The runs of a possibly swept raw config: ``(folder name, config)`` pairs.

    Without list-valued axes this is one run named ``""``. Folder names join the swept
    fields, e.g. ``"n_layers=1__lr=0.001"``.

    >>> runs = expand_sweep({"model": {"n_layers": [1, 2], "d_model": 8}, "data": {"task": "copy"},
    ...                      "train": {"lr": [0.1, 0.01], "steps": 5}})
    >>> [name for name, _ in runs]
    ['n_layers=1__lr=0.1', 'n_layers=1__lr=0.01', 'n_layers=2__lr=0.1', 'n_layers=2__lr=0.01']
    """
    axes: list[tuple[str, str, list[Any]]] = []
    for section in SECTIONS:
        values = raw.get(section, {})
        if isinstance(values, Mapping):
            for key, value in values.items():
                if _is_axis(value, _field_type(section, key, values)):
                    axes.append((section, key, value))
    if not axes:
        return [("", LabConfig.from_dict(raw, source))]
    short = [key if sum(k == key for _, k, _ in axes) == 1 else f"{s}.{key}" for s, key, _ in axes]
    runs = []
    for combo in itertools.product(*(values for _, _, values in axes)):
        variant = {k: dict(v) if isinstance(v, Mapping) else v for k, v in raw.items()}
        for (section, key, _), value in zip(axes, combo, strict=True):
            variant[section][key] = value
        name = "__".join(_label(s, v) for s, v in zip(short, combo, strict=True))
        variant["name"] = f"{raw.get('name', 'run')}/{name}"
        runs.append((name, LabConfig.from_dict(variant, source)))
    if len({n for n, _ in runs}) != len(runs):
        raise LabConfigError(f"{source}: two sweep runs would share a folder name")
    return runs
