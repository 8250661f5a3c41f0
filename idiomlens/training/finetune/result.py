"""``FinetuneResult``: what a fine-tuning run left in its folder, and its history.

A run folder ``OUT`` holds::

    OUT/run.json            identity of the run: source, method, data hash, full config
    OUT/result.json         written at the end: counts, steps, folders (FinetuneResult)
    OUT/history.jsonl       one Trainer log record per line (loss, learning_rate, eval_loss)
    OUT/checkpoint-N/       Trainer checkpoints (weights or adapter + optimizer state);
                            checkpoint-0 is the model before the first update
    OUT/final/              the final weights or adapter, with the tokenizer

Every ``checkpoint-N`` and ``final`` is a folder ``idiomlens.load_model`` reads offline
(adapters name their base by absolute path in ``adapter_config.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from idiomlens._io import Result, atomic_write_json

from .callbacks import HISTORY_FILE

__all__ = ["FinetuneResult", "History", "RESULT_FILE", "RUN_FILE", "read_history"]

RESULT_FILE = "result.json"
RUN_FILE = "run.json"


class History(pd.DataFrame):
    """A DataFrame of the run's log records (``step``, ``loss``, ``learning_rate``,
    ``eval_loss``, ...) whose :meth:`plot` draws the loss and eval curves with plotly."""

    @property
    def _constructor(self) -> type:
        return History

    def plot(self, *, title: str | None = None) -> Any:  # type: ignore[override]
        """A plotly figure: training loss (and eval loss, if any) against the step."""
        import plotly.graph_objects as go

        fig = go.Figure()
        for column, name in (("loss", "train loss"), ("eval_loss", "eval loss")):
            if column in self.columns:
                rows = self[self[column].notna()]
                fig.add_trace(
                    go.Scatter(x=rows["step"], y=rows[column], mode="lines+markers", name=name)
                )
        fig.update_layout(title=title or "fine-tuning loss", xaxis_title="step", yaxis_title="loss")
        return fig


def read_history(out: str | Path) -> History:
    """``OUT/history.jsonl`` as a :class:`History` (empty if the run logged nothing)."""
    path = Path(out) / HISTORY_FILE
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return History(pd.DataFrame(rows))


@dataclass
class FinetuneResult(Result):
    """A finished fine-tuning run (see the module docstring for the folder layout).

    Attributes:
        out: the run folder.
        final: ``OUT/final``, the folder ``load_model`` reads.
        checkpoints: checkpoint folders in step order (``checkpoint-0`` first).
        steps: the optimizer step of each checkpoint.
        method, objective: as given.
        trainable_params, total_params: parameter counts of the model that trained
            (for adapters, ``total`` includes the adapter).
        data_sha256: hash of the training records (``data.data_hash``).
        n_train, n_eval: training and held-out examples.
        source: the base checkpoint (absolute path).
        config: the full :class:`~idiomlens.training.finetune.FinetuneConfig` as a dict.
        meta: library version, architecture, train runtime, final train loss.
    """

    out: Path
    final: Path
    checkpoints: tuple[Path, ...]
    steps: tuple[int, ...]
    method: str
    objective: str
    trainable_params: int
    total_params: int
    data_sha256: str
    n_train: int
    n_eval: int
    source: str
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def history(self) -> History:
        """The log records, read from ``OUT/history.jsonl`` (with a plotly ``.plot()``)."""
        return read_history(self.out)

    @property
    def checkpoint_steps(self) -> dict[int, Path]:
        """``{step: folder}`` of every checkpoint."""
        return dict(zip(self.steps, self.checkpoints, strict=True))

    def to_dataframe(self) -> History:
        """The history (see :attr:`history`)."""
        return self.history

    def plot(self, **kwargs: Any) -> Any:
        """Loss and eval curves (see :meth:`History.plot`)."""
        return self.history.plot(**kwargs)

    def save(self, path: str | Path | None = None) -> Path:
        """Write ``result.json`` into the run folder (or ``path``); returns the folder."""
        folder = Path(path) if path is not None else self.out
        data = {k: v for k, v in self.__dict__.items()}
        data.update(
            out=str(self.out),
            final=str(self.final),
            checkpoints=[p.name for p in self.checkpoints],
            steps=list(self.steps),
        )
        atomic_write_json(folder / RESULT_FILE, {"type": "FinetuneResult", "fields": data})
        return folder

    @classmethod
    def load(cls, path: str | Path) -> FinetuneResult:
        """Read a finished run from its folder ``OUT`` (folders resolved inside ``OUT``)."""
        out = Path(path).expanduser()
        file = out / RESULT_FILE
        if not file.is_file():
            raise FileNotFoundError(f"{out} holds no finished fine-tuning run (no {RESULT_FILE})")
        header = json.loads(file.read_text())
        if header.get("type") != "FinetuneResult":
            raise ValueError(f"{file} holds a {header.get('type')}, not a FinetuneResult")
        fields = dict(header["fields"])
        fields.update(
            out=out,
            final=out / "final",
            checkpoints=tuple(out / name for name in fields["checkpoints"]),
            steps=tuple(fields["steps"]),
        )
        return cls(**fields)

    @classmethod
    def concat(cls, parts: list[FinetuneResult]) -> FinetuneResult:
        raise TypeError("fine-tuning runs are not per-example results and cannot be merged")
