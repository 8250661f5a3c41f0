"""SIGKILL the CLI mid-run, rerun the same command: it resumes and ends where an
uninterrupted run ends (CPU, float32)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from idiomlens.training.finetune import FinetuneResult, finetune
from idiomlens.training.finetune.callbacks import COMPLETE_MARKER

from .conftest import weights

#: Runs the real CLI with every optimizer step slowed down, so the kill lands mid-run.
SLOW_CLI = """
import sys, time
from transformers import Trainer
step = Trainer.training_step
def slow(self, *args, **kwargs):
    time.sleep(0.15)
    return step(self, *args, **kwargs)
Trainer.training_step = slow
from idiomlens.cli import main
sys.exit(main(sys.argv[1:]))
"""

OPTIONS = {"max_steps": 24, "checkpoints": 4, "batch_size": 8, "lr": 1e-3, "lora_dropout": 0.1}


def _argv(base: Path, data: Path, out: Path) -> list[str]:
    return [
        "finetune", "--model", str(base), "--data", str(data), "--method", "lora",
        "--out", str(out), "--max-steps", "24", "--checkpoints", "4", "--batch-size", "8",
        "--lr", "1e-3", "--lora-dropout", "0.1", "--no-progress", "--device", "cpu",
    ]  # fmt: skip


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=root)


def _wait_for_checkpoint(out: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        whole = [
            d for d in out.glob("checkpoint-*")
            if d.name != "checkpoint-0" and (d / COMPLETE_MARKER).is_file()
        ]  # fmt: skip
        if whole:
            return
        assert proc.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared in time")


def test_sigkilled_cli_run_resumes_to_the_uninterrupted_weights(base_dir, corpus, tmp_path):
    data = corpus.to_jsonl(tmp_path / "idioms.jsonl")
    base = base_dir("gpt2")
    reference = finetune(base, data, method="lora", out=tmp_path / "reference",
                         progress=False, device="cpu", **OPTIONS)  # fmt: skip
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_CLI, *_argv(base, data, out)], env=_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_checkpoint(out, proc)
        time.sleep(0.2)  # let it run on a little past the checkpoint
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / "final").exists()
    rerun = subprocess.run(
        [sys.executable, "-m", "idiomlens", *_argv(base, data, out)], env=_env(),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    resumed = FinetuneResult.load(out)
    assert resumed.steps == reference.steps
    a, b = weights(reference.final), weights(resumed.final)
    assert set(a) == set(b)
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    # the history is the uninterrupted run's, without the killed run's extra lines
    ha, hb = reference.history, resumed.history
    assert list(hb["step"]) == list(ha["step"]) == list(range(1, 25))
    assert torch.allclose(
        torch.tensor(hb["loss"].values), torch.tensor(ha["loss"].values), atol=1e-6
    )
