"""Benchmark representation extraction against the bare forward pass it needs.

Model: a random Pythia-70m-shaped ``HookedTransformer`` (6 layers, 8 heads, d_model 512,
d_mlp 2048, rotary, LayerNorm, vocab 50304), built offline; ``--small`` uses d_model 128.
Data: ``--n`` synthetic aligned sentences (random tokens, lengths 15-60, random spans).

Printed, all measured in this one run on the same machine, same batches:

* ``bare``: the forward the extraction needs: the engine's batches, one no-op hook at
  the site's last layer, the forward stopped right after it (nothing is pooled, stored
  or copied);
* each extraction (``site`` / ``pool``, every layer of the site): its time and its ratio
  to ``bare`` (target <= 1.3x, goal <= 1.1x); with ``out=`` the streamed, chunked,
  checksummed run to disk is included (``disk``);
* with ``--memory``: the peak resident memory of fresh processes extracting ``n`` and
  ``4n`` sentences with ``out=`` (streamed) and in memory, ``pool="tokens"``: streamed
  runs should not grow with the corpus, in-memory ones do.

Usage: ``python benchmarks/bench_representations.py --n 1000 [--threads 2] [--memory]``
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transformer_lens import HookedTransformer, HookedTransformerConfig  # noqa: E402

from benchmarks._corpus import random_sentences  # noqa: E402
from idiomlens.engine import Collector, Site, iter_collect  # noqa: E402
from idiomlens.representations import extract  # noqa: E402
from idiomlens.representations.pools import site_hook, site_layers  # noqa: E402

CASES = [  # (site, pool, streamed to disk)
    ("norm", "last", False),
    ("resid_post", "mean", False),
    ("resid_pre", "idiom", False),
    ("resid_pre", "tokens", False),
    ("norm", "last", True),
]


def pythia_like(device: str, small: bool) -> HookedTransformer:
    d = 128 if small else 512
    cfg = HookedTransformerConfig(
        n_layers=6, n_heads=8, d_model=d, d_head=d // 8, d_mlp=4 * d, d_vocab=50304, n_ctx=2048,
        act_fn="gelu", normalization_type="LN", positional_embedding_type="rotary",
        rotary_dim=d // 32, device=device, seed=0,  # a benchmark may seed; the library never does
    )  # fmt: skip
    return HookedTransformer(cfg).eval()


def bare(model, aligned, site: str) -> None:
    last = site_hook(model, site, site_layers(model, site, None)[-1])
    spec = Collector(sites=[Site(last, lambda act, batch, state: None)])
    for _ in iter_collect(model, aligned, spec, aligned=aligned, progress=False):
        pass


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:  # type: ignore[no-untyped-def]
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> None:
    model = pythia_like(args.device, args.small)
    aligned = random_sentences(args.n, end_margin=2)
    tokens = sum(len(a) for a in aligned)
    print(f"model d_model={model.cfg.d_model} n_layers={model.cfg.n_layers} device={args.device} "
          f"threads={torch.get_num_threads()}; n={args.n} sentences, {tokens} tokens")  # fmt: skip
    extract(model, aligned[:8], site="norm", progress=False)  # warm-up (hook order, allocator)
    print(f"{'case':32s} {'bare s':>8s} {'extract s':>10s} {'ratio':>7s}")
    for site, pool, disk in CASES:
        base, ext = [], []
        for _ in range(args.repeats):  # interleaved, the minimum of each is reported
            base.append(timed(partial(bare, model, aligned, site), args.device))
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "reps" if disk else None
                call = partial(
                    extract, model, aligned, site=site, pool=pool, out=out, progress=False
                )
                ext.append(timed(call, args.device))
        name = f"{site}/{pool}" + (" (disk)" if disk else "")
        print(f"{name:32s} {min(base):8.2f} {min(ext):10.2f} {min(ext) / min(base):6.2f}x")


def child(n: int, streamed: bool, small: bool) -> None:
    """One fresh process: extract ``n`` sentences, print the peak RSS in MiB."""
    torch.set_num_threads(1)
    model, aligned = pythia_like("cpu", small), random_sentences(n, end_margin=2)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "reps" if streamed else None
        reps = extract(model, aligned, site="resid_pre", pool="tokens", out=out, chunk_size=128,
                       progress=False)  # fmt: skip
        assert reps.n_rows > 0
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def memory(args: argparse.Namespace) -> None:
    print("peak RSS, pool=tokens, resid_pre, all layers (fresh process each):")
    for streamed in (True, False):
        peaks = []
        for n in (args.n, 4 * args.n):
            cmd = [sys.executable, __file__, "--child", str(n)] + (
                ["--streamed"] if streamed else []
            )
            cmd += ["--small"] if args.small else []
            done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
            peaks.append(float(done.stdout.strip().splitlines()[-1]))
        kind = "streamed (out=)" if streamed else "in memory"
        print(f"  {kind:16s} n={args.n}: {peaks[0]:7.0f} MiB   n={4 * args.n}: {peaks[1]:7.0f} MiB"
              f"   growth {peaks[1] - peaks[0]:+.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="d_model 128 (quick)")
    parser.add_argument("--memory", action="store_true", help="also measure peak memory")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--streamed", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child is not None:
        child(args.child, args.streamed, args.small)
    else:
        run(args)
        if args.memory:
            memory(args)
