"""Real processes: SIGKILL in the middle of `python -m idiomlens score`, and torchrun sharding.

Both compare against an uninterrupted single-process run of the same command: the result
must be bitwise identical (float32 on CPU), with the same ids in the same order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from idiomlens.cli import main
from idiomlens.models import save_hooked, tiny_model

from .conftest import small_corpus

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env.pop("WORLD_SIZE", None)
    return env


def _score_cmd(model_dir: Path, corpus: Path, out: Path, chunk_size: int) -> list[str]:
    return [
        "score", "--model", str(model_dir), "--corpus", str(corpus), "--out", str(out),
        "--chunk-size", str(chunk_size), "--no-progress",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("procs")
    model_dir = save_hooked(tiny_model(n_layers=2, n_heads=4, seed=0), root / "model")
    corpus = small_corpus(2000).to_jsonl(root / "corpus.jsonl")
    return root, model_dir, corpus


def _load(out: Path):
    from idiomlens.scoring import HeadScores

    return HeadScores.load(out)


def _assert_identical(a, b) -> None:
    assert a.ids == b.ids
    assert torch.equal(a.features, b.features) and torch.equal(a.scores, b.scores)


def _chunks_recorded(out: Path) -> int:
    try:
        return len(json.loads((out / "manifest.json").read_text()).get("chunks", {}))
    except (OSError, ValueError):
        return 0


def test_sigkill_then_rerun_equals_uninterrupted(setup):
    root, model_dir, corpus = setup
    out = root / "killed"
    cmd = [sys.executable, "-m", "idiomlens", *_score_cmd(model_dir, corpus, out, 50)]
    proc = subprocess.Popen(
        cmd, env=_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while _chunks_recorded(out) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()!r}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _chunks_recorded(out)
    assert 1 <= done_before < 40 and not (out / "result.json").exists()

    # the same command again, then an uninterrupted run, in one fresh process (one start-up;
    # in this process pytest's runtime shape checks would slow the 2,000 examples down)
    reference = root / "uninterrupted"
    again, fresh = (
        _score_cmd(model_dir, corpus, out, 50),
        _score_cmd(model_dir, corpus, reference, 50),
    )
    script = f"import sys; from idiomlens.cli import main; sys.exit(main({again}) or main({fresh}))"
    both = subprocess.run(
        [sys.executable, "-c", script], env=_env(), cwd=REPO, capture_output=True, text=True
    )
    assert both.returncode == 0, both.stderr[-3000:]
    _assert_identical(_load(out), _load(reference))
    assert _chunks_recorded(out) == 40


@pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed gloo backend unavailable",
)
def test_torchrun_two_processes_equal_single_process(setup, tmp_path):
    root, model_dir, _ = setup
    corpus = small_corpus(90).to_jsonl(tmp_path / "corpus.jsonl")
    sharded, single = tmp_path / "sharded", tmp_path / "single"
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
    ]
    run = subprocess.run(
        [*torchrun, "-m", "idiomlens", *_score_cmd(model_dir, corpus, sharded, 20)],
        env=_env(), cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("HeadScores (90 ids)") == 1  # only rank 0 reports
    manifest = json.loads((sharded / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["chunks"]) == 5
    assert not list(sharded.glob("manifest.rank-*.json"))
    spec = json.loads((sharded / "spec.json").read_text())
    assert spec["run"]["world_size"] == 2
    assert main(_score_cmd(model_dir, corpus, single, 20)) == 0
    _assert_identical(_load(sharded), _load(single))
