"""``train_lm``: train small HookedTransformers from a config, one run or a sweep."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..._io import atomic_write_bytes
from .callbacks import as_callback
from .config import LabConfig, expand_sweep, read_config
from .data import build_data
from .history import history_frame
from .loop import model_fields, run_training
from .result import TrainedLM, is_finished, save_run
from .state import CHECKPOINT, MetricsLog

__all__ = ["train_lm", "Sweep", "config_key"]

log = logging.getLogger(__name__)
_NOT_IN_KEY = ("progress", "tensorboard", "wandb", "keep_checkpoint")


class Sweep(list):
    """The runs of a sweep (a list of :class:`TrainedLM`) with their ``summary`` table."""

    summary: pd.DataFrame


def config_key(cfg: LabConfig) -> str:
    """Hash of everything in ``cfg`` that can change the trained weights or history."""
    raw = cfg.to_dict()
    raw["train"] = {k: v for k, v in raw["train"].items() if k not in _NOT_IN_KEY}
    raw.pop("name", None)
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]


def train_lm(
    config: str | Path | Mapping[str, Any] | LabConfig,
    *,
    out: str | Path | None = None,
    hooks: Sequence[tuple[Any, Any]] | None = None,
    callbacks: Sequence[Any] | None = None,
    progress: bool | None = None,
) -> TrainedLM | Sweep:
    """Train a small ``HookedTransformer`` from ``config``; a list of runs for a sweep.

    Args:
        config: a TOML / JSON file, a nested dict or a :class:`LabConfig` (layout in
            :mod:`idiomlens.training.lab.config`). A list where a field takes one value
            makes a sweep over the cartesian product of all such fields.
        out: the run folder (a sweep: the folder of run folders, plus ``summary.csv``);
            default a new temporary folder. Rerunning into the same folder resumes an
            interrupted run from its last checkpoint and returns finished runs as they are.
        hooks: TransformerLens forward hooks ``(name_or_filter, fn)`` active in every
            training and evaluation forward pass.
        callbacks: step callbacks (see :mod:`idiomlens.training.lab.callbacks`).
        progress: show a progress bar (default ``train.progress``).

    Returns:
        :class:`TrainedLM` (``.model``, ``.tokenizer``, ``.dir``, ``.history``), or a
        :class:`Sweep` (a list of them with ``.summary``).

    >>> run = train_lm({"model": {"n_layers": 1, "d_model": 16, "attn_only": True},
    ...                 "data": {"task": "copy", "length": 3, "n_train": 64, "n_val": 16},
    ...                 "train": {"steps": 4, "batch_size": 8, "progress": False}})
    >>> list(run.history.step), "val_accuracy" in run.history
    ([0, 4], True)
    """
    raw, source = read_config(config)
    runs = expand_sweep(raw, source)
    root = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="idiomlens-lab-"))
    hooks = list(hooks or [])
    cbs = [as_callback(cb) for cb in callbacks or []]
    if len(runs) == 1 and runs[0][0] == "":
        return _train_one(runs[0][1], root, hooks, cbs, progress)
    done = Sweep(_train_one(cfg, root / name, hooks, cbs, progress) for name, cfg in runs)
    done.summary = _summary(runs, done)
    atomic_write_bytes(root / "summary.csv", done.summary.to_csv(index=False).encode())
    return done


def _train_one(
    cfg: LabConfig, folder: Path, hooks: list[Any], callbacks: list[Any], progress: bool | None
) -> TrainedLM:
    key = config_key(cfg)
    if is_finished(folder, key):
        log.info("%s: already trained, loading", folder)
        return TrainedLM.load(folder, device=cfg.train.device)
    if is_finished(folder):
        raise ValueError(f"{folder} holds a finished run of another config; use another out folder")
    if progress is not None:
        from dataclasses import replace

        cfg = replace(cfg, train=replace(cfg.train, progress=progress))
    folder.mkdir(parents=True, exist_ok=True)
    data = build_data(cfg)
    metrics = MetricsLog(
        folder, tensorboard=cfg.train.tensorboard, wandb=cfg.train.wandb, config=cfg.to_dict()
    )
    try:
        model, state, seconds = run_training(
            cfg, data, folder, key, hooks=hooks, callbacks=callbacks, metrics=metrics
        )
    finally:
        metrics.close()
    history = history_frame(state.history)
    final = {k: v for k, v in history.iloc[-1].items() if pd.notna(v)}
    final["train_loss"] = float(history["train_loss"].dropna().iloc[-1])
    extra = {"seconds": round(seconds, 3), "steps": state.step, "tokens_seen": state.tokens_seen,
             "eval_batch_size": cfg.train.eval_batch_size}  # fmt: skip
    save_run(folder, model, config=cfg.to_dict(), fields=model_fields(cfg, data), key=key,
             metrics=final, val=data.val, hooks=hooks, extra=extra)  # fmt: skip
    if not cfg.train.keep_checkpoint:
        (folder / CHECKPOINT).unlink(missing_ok=True)
    return TrainedLM(model, data.tokenizer, folder, history, cfg.to_dict(), final)


def _summary(runs: list[tuple[str, LabConfig]], done: list[TrainedLM]) -> pd.DataFrame:
    rows = []
    for (name, _), run in zip(runs, done, strict=True):
        keys = [part.split("=", 1)[0] for part in name.split("__")]
        swept = {k: _lookup(run.config, k) for k in keys}
        final = {k: v for k, v in run.metrics.items() if k not in swept}  # e.g. the last lr
        rows.append({"run": name, **swept, **final, "dir": str(run.dir)})
    return pd.DataFrame(rows)


def _lookup(config: dict[str, Any], key: str) -> Any:
    """The value of a swept field (``key`` or ``section.key``) in a run's config."""
    if "." in key:
        section, field = key.split(".", 1)
        return config[section].get(field)
    for section in ("model", "data", "tokenizer", "train"):
        if key in config.get(section, {}):
            return config[section][key]
    return None
