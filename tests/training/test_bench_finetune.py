"""The fine-tuning benchmark script still runs (tiny size; no timing is asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_finetune_runs():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_finetune.py"),
         "--steps", "3", "--repeats", "1", "--layers", "1", "--width", "32"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ratio finetune/plain" in done.stdout
