"""A run's mutable state, its checkpoint file and its metrics log.

The checkpoint (``checkpoint.pt``, written atomically, read with
``torch.load(weights_only=True)``) holds everything the next step depends on: model and
optimiser state, both generators, the batch order and cursor, the step, the running
loss window and the history so far, plus the config's hash so a checkpoint is never
resumed under another config. ``metrics.jsonl`` gets one line per history row and is
rewritten from the checkpoint's history on resume, so it never repeats a step.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..._io import atomic_write_bytes

__all__ = ["RunState", "save_checkpoint", "load_checkpoint", "MetricsLog", "CHECKPOINT", "METRICS"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


@dataclass
class RunState:
    """Everything besides the model and optimiser that the next step depends on."""

    step: int
    order: Tensor
    cursor: int
    data_gen: torch.Generator
    user_gen: torch.Generator
    window_sum: Tensor
    window_count: int = 0
    tokens_seen: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def save_checkpoint(
    path: Path, model: Any, opt: torch.optim.Optimizer, state: RunState, key: str
) -> None:
    """Write the checkpoint atomically (a crash mid-write keeps the previous one)."""
    blob = {
        "key": key,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "step": state.step,
        "order": state.order,
        "cursor": state.cursor,
        "data_gen": state.data_gen.get_state(),
        "user_gen": state.user_gen.get_state(),
        "window_sum": state.window_sum,
        "window_count": state.window_count,
        "tokens_seen": state.tokens_seen,
        "history": json.dumps(state.history),
    }
    buf = io.BytesIO()
    torch.save(blob, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(
    path: Path, model: Any, opt: torch.optim.Optimizer, key: str
) -> RunState | None:
    """Restore model and optimiser from ``path`` and return the state; None if there is
    no checkpoint. A checkpoint of another config is an error naming the file."""
    if not path.is_file():
        return None
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("key") != key:
        raise ValueError(
            f"{path} is the checkpoint of another config; remove it or use another folder"
        )
    model.load_state_dict(blob["model"])
    opt.load_state_dict(blob["optimizer"])
    data_gen, user_gen = torch.Generator(), torch.Generator()
    data_gen.set_state(blob["data_gen"])
    user_gen.set_state(blob["user_gen"])
    return RunState(
        step=int(blob["step"]),
        order=blob["order"],
        cursor=int(blob["cursor"]),
        data_gen=data_gen,
        user_gen=user_gen,
        window_sum=blob["window_sum"].to(next(model.parameters()).device),
        window_count=int(blob["window_count"]),
        tokens_seen=int(blob["tokens_seen"]),
        history=json.loads(blob["history"]),
    )


class MetricsLog:
    """Append history rows to ``metrics.jsonl`` (and TensorBoard / W&B when asked)."""

    def __init__(
        self, folder: Path, *, tensorboard: bool, wandb: str | None, config: dict[str, Any]
    ) -> None:
        self.path = folder / METRICS
        self.tb = self.run = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise ImportError(
                    "train.tensorboard = true needs the tensorboard package (pip install tensorboard)"
                ) from err
            self.tb = SummaryWriter(log_dir=str(folder / "tensorboard"))
        if wandb:
            import wandb as wb

            self.run = wb.init(project=wandb, dir=str(folder), config=config, reinit=True)

    def reset(self, history: list[dict[str, Any]]) -> None:
        """Start the file over with the rows already in ``history`` (a resumed run)."""
        self.path.write_text("".join(json.dumps(r) + "\n" for r in history))

    def add(self, state: RunState, row: dict[str, Any]) -> None:
        """Append ``row`` to the run's history and to the logs."""
        state.history.append(row)
        self.write(row)

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        scalars = {k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float))}
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, row["step"])
        if self.run is not None:
            self.run.log(scalars, step=row["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.run is not None:
            self.run.finish()
