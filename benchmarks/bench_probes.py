"""Benchmark probes: all layers at once (``train_probes``) vs scikit-learn one layer at a time.

Data: ``planted_representations`` (anisotropic Gaussian layers with a decaying spectrum,
a label planted at several layers with graded strength), ``--layers x --n x --d``.
Both sides use the same split (``train_probes``'s seeded stratified split), the same
standardisation (training rows' mean and std), the same objective (C=1, L2, intercept
unpenalised) and the same stopping rule (``max |grad| <= --tol`` on the objective
divided by the training rows, which is scikit-learn's ``tol`` for ``lbfgs``).

Printed, all measured in this run:

* ``sklearn``: ``StandardScaler`` + ``LogisticRegression`` fitted layer by layer
  (probe only, and probe + control labels), best wall time of ``--repeats`` runs;
* ``idiomlens``: ``train_probes(control=False)`` and ``train_probes(control=True)``
  (the default call), best of ``--repeats``, including stacking and standardising;
* the speed-up ratios and the largest per-layer accuracy difference.

Usage::

    python benchmarks/bench_probes.py                       # 12 layers x 4,000 x 512
    python benchmarks/bench_probes.py --threads 1           # scikit-learn's fastest setting
    python benchmarks/bench_probes.py --threads 2 --sklearn-threads 1   # each at its fastest
    python benchmarks/bench_probes.py --device cuda         # GPU figures
    python benchmarks/bench_probes.py --layers 3 --n 400 --d 32   # quick
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from idiomlens.representations.probes import train_probes
from idiomlens.representations.probes.labels import control_labels, encode_labels
from idiomlens.representations.probes.synthetic import planted_representations


def sklearn_probes(reps, result, labels, tol):
    """Per-layer test accuracy of scikit-learn on ``result``'s split, for each label set."""
    tr, te = result.train_index.numpy(), result.test_index.numpy()
    accs, iters = [], []
    for layer in reps.layers:
        x = reps.vectors(layer).numpy()
        scaler = StandardScaler().fit(x[tr])
        xtr, xte = scaler.transform(x[tr]), scaler.transform(x[te])
        row = []
        for y in labels:
            model = LogisticRegression(C=1.0, tol=tol, max_iter=10_000).fit(xtr, y[tr])
            row.append(float((model.predict(xte) == y[te]).mean()))
            iters.append(int(model.n_iter_[0]))
        accs.append(row)
    return np.array(accs), iters


def timed(fn, repeats=1):
    """Best wall time of ``repeats`` runs (the machine is shared and noisy), and the output."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    signal = tuple(range(args.layers // 3, args.layers))
    reps = planted_representations(
        n=args.n, d_model=args.d, layers=args.layers, signal=signal, n_classes=args.classes,
        strength=args.strength, decay=args.decay, seed=0,
    )  # fmt: skip
    kw = {"tol": args.tol, "device": args.device, "progress": False}
    train_probes(reps, layers=reps.layers[:1], **kw)  # warm-up (allocator, CUDA context)
    r = args.repeats
    t_ours, ours = timed(lambda: train_probes(reps, control=False, **kw), r)
    t_ours_c, ours_c = timed(lambda: train_probes(reps, control=True, **kw), r)
    y = np.asarray(reps.labels["label"])
    codes = np.asarray(ours_c.classes)
    # the same control labels train_probes drew (its training rows' are not kept)
    _, all_codes = encode_labels(list(y), ours_c.train_index)
    ctrl = codes[control_labels(all_codes, ours_c.train_index, ours_c.test_index).numpy()]
    with threadpool_limits(args.sklearn_threads or args.threads):
        t_sk, (sk, sk_iters) = timed(lambda: sklearn_probes(reps, ours, [y], args.tol), r)
        t_sk_c, (sk_c, _) = timed(lambda: sklearn_probes(reps, ours, [y, ctrl], args.tol), r)
    diff = np.abs(ours.accuracy.numpy() - sk[:, 0]).max()
    diff_c = np.abs(ours_c.control_accuracy.numpy() - sk_c[:, 1]).max()
    print(
        f"{args.layers} layers x {args.n} rows x {args.d} dims, {args.classes} classes, "
        f"tol={args.tol}, threads={args.threads} "
        f"(scikit-learn {args.sklearn_threads or args.threads}), device={args.device}, "
        f"best of {args.repeats}"
    )
    print(f"accuracy per layer (idiomlens): {np.round(ours.accuracy.numpy(), 3).tolist()}")
    print(f"accuracy per layer (sklearn)  : {np.round(sk[:, 0], 3).tolist()}")
    print(f"iterations idiomlens {ours.n_iter[:, 0].tolist()}  sklearn {sk_iters}")
    print(f"max |accuracy difference| probe {diff:.4f}, control {diff_c:.4f}")
    print(f"sklearn   probe only      {t_sk:8.2f} s")
    print(
        f"idiomlens probe only      {t_ours:8.2f} s   ratio sklearn/idiomlens = {t_sk / t_ours:.2f}"
    )
    print(f"sklearn   probe + control {t_sk_c:8.2f} s")
    print(
        f"idiomlens probe + control {t_ours_c:8.2f} s   "
        f"ratio sklearn/idiomlens = {t_sk_c / t_ours_c:.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--decay", type=float, default=0.5)
    parser.add_argument("--tol", type=float, default=1e-4, help="both solvers' max|grad| tolerance")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="time each side this often")
    parser.add_argument(
        "--sklearn-threads", type=int, default=None,
        help="BLAS threads for scikit-learn (default: --threads; 1 is its fastest here)",
    )  # fmt: skip
    run(parser.parse_args())
