"""Trainer callbacks: log-spaced checkpoints, the step-0 save, and the JSONL history.

The Trainer already saves, resumes and logs; these callbacks only decide *when* it saves
(:func:`checkpoint_steps`) and copy its log records to ``OUT/history.jsonl``.

>>> checkpoint_steps(1000, 4)
[1, 6, 32, 178, 1000]
>>> checkpoint_steps(5, 10)
[1, 2, 3, 4, 5]
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from idiomlens._io import atomic_write_json

__all__ = [
    "checkpoint_steps",
    "ScheduledSaves",
    "StepZeroSave",
    "JsonlHistory",
    "LossBar",
    "COMPLETE_MARKER",
    "HISTORY_FILE",
]

log = logging.getLogger(__name__)

#: Written into a checkpoint folder once the Trainer has saved all of it.
COMPLETE_MARKER = "idiomlens_complete.json"
HISTORY_FILE = "history.jsonl"


def checkpoint_steps(total: int, spec: int | tuple[int, ...]) -> list[int]:
    """The optimizer steps after which to save, always ending with ``total``.

    ``spec = n`` gives ``n`` log-spaced steps in ``[1, total)`` (geometric from 1 to
    ``total``; a step already taken moves to the next free one) plus ``total``; step 0
    is saved separately. A sequence gives those steps (those beyond ``total`` dropped).
    """
    if total < 1:
        raise ValueError(f"a run needs at least one step, got {total}")
    if not isinstance(spec, int):
        return sorted({s for s in spec if 1 <= s <= total} | {total})
    if spec >= total - 1:
        return list(range(1, total + 1))
    steps: list[int] = []
    for i in range(spec):
        ideal = math.exp(math.log(total) * i / spec)  # 1 .. total**((n-1)/n)
        step = max(round(ideal), steps[-1] + 1 if steps else 1)
        steps.append(step)
    return sorted(set(s for s in steps if s < total) | {total})


class ScheduledSaves(TrainerCallback):
    """Ask the Trainer to save at :func:`checkpoint_steps` of its step count, and mark each saved folder complete.

    The Trainer writes ``checkpoint-N`` non-atomically (weights, optimizer, RNG state,
    then ``trainer_state.json``); :data:`COMPLETE_MARKER`, written atomically after its
    ``on_save``, tells a resumed run which folders are whole.
    """

    def __init__(self, spec: int | tuple[int, ...]) -> None:
        self.spec = spec
        self.steps: set[int] = set()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self.steps = set(checkpoint_steps(state.max_steps, self.spec))  # the Trainer's count
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.global_step in self.steps:
            control.should_save = True
        return control

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            atomic_write_json(folder / COMPLETE_MARKER, {"step": state.global_step})
        return control


class StepZeroSave(TrainerCallback):
    """Save the model before the first update as ``checkpoint-0`` (weights only).

    ``trainer`` is attached after the Trainer is built; the folder is loadable like any
    other checkpoint but holds no optimizer state (a run never resumes from it).
    """

    def __init__(self) -> None:
        self.trainer: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        folder = Path(args.output_dir) / "checkpoint-0"
        if state.global_step == 0 and not (folder / COMPLETE_MARKER).is_file():
            self.trainer.save_model(str(folder))
            if state.is_world_process_zero:
                atomic_write_json(folder / COMPLETE_MARKER, {"step": 0})
        return control


class JsonlHistory(TrainerCallback):
    """Append every Trainer log record (loss, learning rate, eval loss, ...) with its step
    (the end-of-training summary goes to the result's ``meta`` instead).

    On resume from step ``s``, lines after ``s`` (logged by the killed run after its last
    checkpoint) are dropped first, so the history matches an uninterrupted run.
    """

    def __init__(self, path: Path, resume_step: int) -> None:
        self.path = path
        self.resume_step = resume_step

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if not state.is_world_process_zero:
            return control
        kept = []
        if self.path.is_file() and self.resume_step > 0:
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line cut by the crash
                    continue
                if row.get("step", 0) <= self.resume_step:
                    kept.append(line)
        self.path.write_text("".join(line + "\n" for line in kept))
        return control

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> Any:
        if state.is_world_process_zero and logs and "train_runtime" not in logs:
            row = {"step": state.global_step, "epoch": state.epoch, **logs}
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        return control


class LossBar(ProgressCallback):
    """The Trainer's tqdm bar, showing the latest loss instead of printing every record
    (the records go to ``history.jsonl``)."""

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        bar = getattr(self, "training_bar", None)
        if state.is_world_process_zero and bar is not None and logs:
            shown = {k: f"{logs[k]:.4g}" for k in ("loss", "eval_loss") if k in logs}
            if shown:
                bar.set_postfix(shown, refresh=False)
