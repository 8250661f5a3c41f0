"""The run folder: one run per folder, its identity in ``run.json``, and resume points.

:func:`check_folder` refuses (``RunFolderError``, nothing touched) a folder that holds
files of something else or of a run with a different identity, and says which keys
differ; :func:`claim_folder` writes ``run.json`` once the model and data are checked. :func:`resume_point` finds the last whole Trainer checkpoint; folders the killed
run left half-written are removed (they are re-saved when training passes that step).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from idiomlens._io import atomic_write_json

from .callbacks import COMPLETE_MARKER
from .result import RESULT_FILE, RUN_FILE

__all__ = [
    "RunFolderError",
    "check_folder",
    "claim_folder",
    "resume_point",
    "checkpoint_folders",
    "step_of",
]

log = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class RunFolderError(ValueError):
    """The output folder holds something else than this run; nothing was changed."""


def step_of(folder: Path) -> int | None:
    """The step of a ``checkpoint-N`` folder name, else ``None``."""
    m = _CHECKPOINT.match(folder.name)
    return int(m[1]) if m else None


def checkpoint_folders(out: Path, *, complete_only: bool = True) -> list[tuple[int, Path]]:
    """``(step, folder)`` of the ``checkpoint-N`` folders of ``out``, by step."""
    found = []
    if out.is_dir():
        for child in out.iterdir():
            step = step_of(child)
            if step is None or not child.is_dir():
                continue
            if complete_only and not (child / COMPLETE_MARKER).is_file():
                continue
            found.append((step, child))
    return sorted(found)


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def check_folder(out: Path, identity: dict[str, Any]) -> bool:
    """Whether ``out`` already holds this finished run; reads only, writes nothing.

    Raises:
        RunFolderError: ``out`` is a file, holds files but no ``run.json``, or holds a
            run whose identity differs (the message lists the differing keys).
    """
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"output folder {out} is a file")
    run_file = out / RUN_FILE
    if run_file.is_file():
        try:
            stored = json.loads(run_file.read_text())["identity"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise RunFolderError(f"{run_file} is not a fine-tuning run record") from None
        diff = _differences(stored, identity)
        if diff:
            raise RunFolderError(
                f"output folder {out} holds a different fine-tuning run ({'; '.join(diff[:4])}"
                f"{'; ...' if len(diff) > 4 else ''}); nothing was changed: use another out "
                "folder or delete this one"
            )
        return (out / RESULT_FILE).is_file() and (out / "final").is_dir()
    # another rank of the same launch may be writing run.json right now (a temp file)
    if out.is_dir() and any(not p.name.startswith(f".{RUN_FILE}.") for p in out.iterdir()):
        raise RunFolderError(
            f"output folder {out} is not empty and holds no fine-tuning run ({RUN_FILE}); "
            "nothing was changed: use an empty or new folder"
        )
    return False


def claim_folder(out: Path, identity: dict[str, Any]) -> None:
    """Create ``out`` and record the run's identity in ``run.json`` (after
    :func:`check_folder` passed and the model and data were checked)."""
    if (out / RUN_FILE).is_file():
        return
    out.mkdir(parents=True, exist_ok=True)
    from idiomlens import __version__

    atomic_write_json(out / RUN_FILE, {"identity": identity, "library_version": __version__})


def resume_point(out: Path) -> Path | None:
    """The last whole checkpoint with optimizer state (step > 0), or ``None``.

    Half-written ``checkpoint-N`` folders (no :data:`COMPLETE_MARKER`) are removed (by
    rank 0 only, under ``torchrun``).
    """
    main_process = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 cleans
    for _, folder in checkpoint_folders(out, complete_only=False):
        if main_process and not (folder / COMPLETE_MARKER).is_file():
            log.warning("removing the incomplete checkpoint %s left by an interrupted run", folder)
            shutil.rmtree(folder)
    whole = [(s, f) for s, f in checkpoint_folders(out) if s > 0]
    whole = [(s, f) for s, f in whole if (f / "trainer_state.json").is_file()]
    return whole[-1][1] if whole else None
