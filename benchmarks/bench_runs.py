"""Benchmark the run engine: overhead of chunked execution, and the cost of reuse.

Runs ``idiomlens score`` (through :func:`idiomlens.cli.main`, as a user would) on a tiny
saved model and ``--n`` short synthetic sentences, and prints, all measured in this run:

* ``direct``: one ``score_heads`` call on the whole corpus (the baseline);
* ``first``: the chunked, checksummed, resumable run (``--chunk-size``), and its ratio
  to ``direct`` (the engine's overhead);
* ``reuse``: the same command again (loads the model, hashes its weights, serves the
  finished result), and its ratio to ``first`` (the acceptance bar is <= 0.10);
* ``resume``: the same command after deleting the merged result and half of the chunk
  records' files (half the chunks recomputed), ratio to ``first``.

Usage::

    python benchmarks/bench_runs.py            # 2,000 sentences
    python benchmarks/bench_runs.py --n 500    # quicker, for a busy machine
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from idiomlens.cli import main
from idiomlens.data import IdiomCorpus, IdiomExample, load_corpus
from idiomlens.models import load_model, save_hooked, tiny_model
from idiomlens.scoring import score_heads

PHRASES = ["spilled the beans", "kicked the bucket", "a piece of cake", "hit the nail"]


def synthetic_corpus(n: int) -> IdiomCorpus:
    rows = []
    for i in range(n):
        phrase = PHRASES[i % len(PHRASES)]
        text = f"{'Then ' * (i % 3)}he {phrase} today {i}."
        start = text.index(phrase)
        rows.append(IdiomExample(f"ex-{i:06d}", text, (start, start + len(phrase))))
    return IdiomCorpus(rows, name="bench")


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(n: int, chunk_size: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    try:
        model_dir = save_hooked(tiny_model(n_layers=2, n_heads=4, seed=0), root / "model")
        corpus_path = synthetic_corpus(n).to_jsonl(root / "corpus.jsonl")
        out = root / "out"
        argv = ["score", "--model", str(model_dir), "--corpus", str(corpus_path), "--out", str(out),
                "--chunk-size", str(chunk_size), "--no-progress"]  # fmt: skip
        model, corpus = load_model(model_dir), load_corpus(corpus_path)
        direct = timed(lambda: score_heads(model, corpus, progress=False))
        first = timed(lambda: main(argv))
        reuse = timed(lambda: main(argv))
        (out / "result.json").unlink()
        for chunk in sorted((out / "chunks").iterdir())[::2]:
            shutil.rmtree(chunk)
        resume = timed(lambda: main(argv))
        print(f"n={n} chunk_size={chunk_size}")
        print(f"direct score_heads  {direct:7.2f} s")
        print(f"first chunked run   {first:7.2f} s   first/direct  = {first / direct:.2f}")
        print(f"reuse (same run)    {reuse:7.2f} s   reuse/first   = {reuse / first:.3f}")
        print(f"resume (half lost)  {resume:7.2f} s   resume/first  = {resume / first:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--chunk-size", type=int, default=100)
    args = parser.parse_args()
    run(args.n, args.chunk_size)
