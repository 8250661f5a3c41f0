"""benchmarks/bench_probes.py still runs (tiny sizes; no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_probes_runs_and_accuracies_agree():
    args = ["--layers", "3", "--n", "300", "--d", "16", "--threads", "1"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_probes.py"), *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ratio sklearn/idiomlens" in done.stdout
    line = next(x for x in done.stdout.splitlines() if x.startswith("max |accuracy difference|"))
    probe = float(line.split("probe ")[1].split(",")[0])
    assert probe <= 0.02, line
