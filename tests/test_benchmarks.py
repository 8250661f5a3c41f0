"""The benchmark scripts still run (tiny sizes; no timing is asserted: figures are noise)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "bench_scoring.py": (
        ["--n", "12", "--naive-n", "1", "--repeats", "1", "--threads", "1"],
        ["ratio to bare", "thesis-style naive loop", "naive loop with list copies"],
    ),
    "bench_runs.py": (["--n", "40", "--chunk-size", "10"], ["reuse/first", "resume/first"]),
    "bench_representations.py": (
        ["--n", "12", "--repeats", "1", "--small", "--threads", "1"],
        ["norm/last", "(disk)", "x"],
    ),
    "bench_geometry.py": (
        [
            "--layers",
            "2",
            "--n",
            "200",
            "--dim",
            "16",
            "--manifold",
            "3",
            "--classes",
            "2",
            "--threads",
            "1",
        ],  # fmt: skip
        ["speed-up (baseline / idiomlens)", "max |idiomlens - baseline| neighbourhood_overlap"],
    ),
    "bench_lab.py": (
        [
            "--steps",
            "5",
            "--repeats",
            "1",
            "--layers",
            "1",
            "--d-model",
            "32",
            "--batch-size",
            "8",
            "--length",
            "6",
            "--n-val",
            "16",
        ],  # fmt: skip
        ["train_lm:", "plain loop:", "ratio train_lm / plain"],
    ),
    "bench_finetune.py": (
        ["--steps", "3", "--repeats", "1", "--layers", "1", "--width", "32"],
        ["ratio finetune/plain"],
    ),
}


@pytest.mark.parametrize("script", list(CASES))
def test_benchmark_runs(script):
    args, expected = CASES[script]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        },
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for text in expected:
        assert text in done.stdout
