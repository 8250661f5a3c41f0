"""Benchmark instant cache hits: a finished ``idiomlens score`` rerun vs the first run.

Every figure is the wall time of a fresh ``python -m idiomlens ...`` process (what a user
pays), measured in this run on this machine:

* ``python start-up``: ``python -c pass`` (the floor);
* ``--help``: ``python -m idiomlens --help``;
* ``first``: ``idiomlens score --model idiomlens-demo`` on ``--n`` sentences (the shipped
  demo corpus, each sentence repeated with varied openings), from an empty ``--out``;
* ``hit``: the same command again: answered from ``--out`` by the request key (input
  file hashes, from the stat-keyed hash cache), without torch or the model;
* ``hit, cold hash cache``: the same, after deleting the file-hash cache (the model and
  corpus files are hashed again);
* ``full-path rerun``: the same command with the request record deleted, so the model
  is loaded and its weights hashed before the store serves the result: what every
  rerun cost before request keys (the "before" figure).

The acceptance bar is ``hit / first <= 0.10``.

Usage::

    python benchmarks/bench_cache.py              # 3,000 sentences
    python benchmarks/bench_cache.py --n 200      # quick check
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPENINGS = ["", "Then ", "Yesterday ", "In the end ", "Later ", "Of course ", "Sadly ", "So "]


def write_corpus(n: int, path: Path) -> Path:
    """``n`` sentences: the demo corpus, each with a varied opening word, cycled."""
    from idiomlens.data import IdiomCorpus, IdiomExample, demo_corpus

    base = list(demo_corpus())
    rows = []
    for i in range(n):
        ex = base[i % len(base)]
        lead = OPENINGS[(i // len(base)) % len(OPENINGS)]
        text = lead + (ex.text[0].lower() + ex.text[1:] if lead else ex.text)
        span = (ex.span[0] + len(lead), ex.span[1] + len(lead))
        rows.append(IdiomExample(f"{ex.id}-{i:05d}", text, span, ex.label, dict(ex.meta)))
    return IdiomCorpus(rows, name="bench-cache").to_jsonl(path)


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return seconds


def median_of(repeats: int, cmd: list[str], env: dict[str, str], before=None) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        times.append(timed(cmd, env))
    return statistics.median(times)


def run(n: int, repeats: int, threads: int | None) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    env = dict(os.environ, IDIOMLENS_CACHE_DIR=str(root / "hash-cache"), HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    try:
        corpus = write_corpus(n, root / "corpus.jsonl")
        out = root / "out"
        py = [sys.executable]
        score = [*py, "-m", "idiomlens", "score", "--model", "idiomlens-demo",
                 "--corpus", str(corpus), "--out", str(out), "--no-progress"]  # fmt: skip
        startup = median_of(repeats, [*py, "-c", "pass"], env)
        help_ = median_of(repeats, [*py, "-m", "idiomlens", "--help"], env)
        first = timed(score, env)
        hit = median_of(repeats, score, env)
        cold = median_of(
            repeats, score, env, before=lambda: shutil.rmtree(root / "hash-cache", True)
        )
        full = median_of(
            max(1, repeats // 2), score, env, before=lambda: (out / "requests.json").unlink()
        )
        rows = [
            ("python start-up", startup),
            ("idiomlens --help", help_),
            (f"first run ({n} sentences)", first),
            ("cache hit", hit),
            ("cache hit, cold hash cache", cold),
            ("full-path rerun (before)", full),
        ]
        print(f"idiomlens score, demo model, {n} sentences (medians of {repeats}):")
        for name, seconds in rows:
            print(f"  {name:<30} {seconds:8.3f} s")
        print(f"  {'hit/first':<30} {hit / first:8.3f}   (bar <= 0.10)")
        print(f"  {'cold-hit/first':<30} {cold / first:8.3f}")
        print(f"  {'full-path/first (before)':<30} {full / first:8.3f}")
        print(f"  {'hit - python start-up':<30} {hit - startup:8.3f} s")
        print(f"  {'help - python start-up':<30} {help_ - startup:8.3f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="sentences (default 3000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per median (default 3)")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the runs")
    args = parser.parse_args()
    run(args.n, args.repeats, args.threads)


if __name__ == "__main__":
    main()
