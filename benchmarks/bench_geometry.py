"""Geometry: one shared torch kNN graph per layer + vectorised estimators, vs a baseline.

Times ``geometry(reps, other=..., labels=...)`` — TwoNN, GRIDE at every scale
``2 n1 < N``, kNN density + ADP + ARI, label overlap and the neighbourhood overlap with a
second representations — against the same metrics computed the way DADApy does, in the
same run on the same data:

- the graph: scikit-learn's ``NearestNeighbors(algorithm="brute")`` per layer and space
  (what DADApy builds on), as deep as GRIDE's largest rank, float64;
- the estimators: naive numpy / scipy (TwoNN; GRIDE by maximising its likelihood with
  ``scipy.optimize.minimize_scalar`` per scale; kNN density; label and neighbourhood
  overlap) and ADP as DADApy's ``compute_clustering_ADP_pure_python`` (Python loops).

It prints both wall times, their ratio, and the largest difference between the two
sets of results (IDs, overlaps, ARI). Synthetic data: per layer, ``--classes`` clusters
on a ``--manifold``-dimensional curved subspace of ``--dim`` dimensions.

    python benchmarks/bench_geometry.py                      # 8 layers x 5000 x 512
    python benchmarks/bench_geometry.py --device cuda        # the GPU for idiomlens
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from scipy.special import betaln, gammaln
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import NearestNeighbors

from idiomlens.representations import Representations
from idiomlens.representations.geometry import geometry, gride_scales


def make_layers(args: argparse.Namespace) -> tuple[dict, dict, list[int]]:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, args.classes, (args.n,), generator=g)
    a, b = {}, {}
    for layer in range(args.layers):
        centres = torch.randn(args.classes, args.manifold, generator=g) * (1 + layer / 2)
        z = centres[labels] + torch.randn(args.n, args.manifold, generator=g)
        feats = torch.cat([z, torch.sin(z), z**2 / 4], 1)
        x = feats @ torch.randn(feats.shape[1], args.dim, generator=g) / math.sqrt(feats.shape[1])
        a[layer] = x
        b[layer] = x + 0.3 * torch.randn(x.shape, generator=g)
    return a, b, labels.tolist()


# ---- the baseline: scikit-learn graph + naive estimators ----------------------------------


def log_expm1(t: np.ndarray) -> np.ndarray:
    """``log(exp(t) - 1)`` for ``t > 0`` without overflow."""
    return t + np.log(-np.expm1(-t))


def naive_gride(mu: np.ndarray, n1: int) -> float:
    mu = np.where(mu == 1, mu + 10 * np.finfo(float).eps, mu)
    q95, q50 = np.percentile(mu, [95, 50])
    mu = mu[mu < 20 * (q95 - q50) + q50]
    n2 = 2 * n1

    def nll(d: float) -> float:
        ll = (len(mu) - 1) * math.log(d) + np.sum((n2 - n1 - 1) * log_expm1(d * np.log(mu)))
        return -(ll - len(mu) * betaln(n2 - n1, n1) - np.sum(((n2 - 1) * d + 1) * np.log(mu)))

    return minimize_scalar(nll, bounds=(1e-3, 1e3), method="bounded", options={"xatol": 1e-9}).x


def naive_adp(
    full: np.ndarray, log_den: np.ndarray, err: np.ndarray, k: int, z: float
) -> np.ndarray:
    """DADApy's pure-Python ADP (``compute_clustering_ADP_pure_python``), ``halo=False``."""
    n, cols = full.shape
    rho = log_den - np.min(log_den - z * err) + 1
    g = rho - err
    centres = [i for i in range(n) if not (g[full[i, 1 : k + 1]] > g[i]).any()]
    kept = []
    for c in centres:
        rows, pos = np.where(full[:, 1 : k + 1] == c)
        if not (g[rows] > g[c]).any():
            kept.append(c)
    cl = -np.ones(n, dtype=int)
    cl[kept] = np.arange(len(kept))
    for ele in np.argsort(-g, kind="stable"):
        nn = 0
        while cl[ele] == -1 and nn < cols - 1:
            nn += 1
            cl[ele] = cl[full[ele, nn]]
    m = len(kept)
    kept_set = set(kept)
    bord, bord_err, point = np.zeros((m, m)), np.zeros((m, m)), -np.ones((m, m), dtype=int)
    for p1 in range(n):
        c = cl[p1]
        if p1 in kept_set:
            continue
        other = np.nonzero(cl[full[p1, 1 : k + 1]] != c)[0]
        if not len(other):
            continue
        pp = full[p1, 1 + other[0]]
        cp = cl[pp]
        valid = True
        for po in full[pp, 1:]:
            if po == p1:
                break
            if cl[po] == c:
                valid = False
                break
        if valid and g[p1] > bord[c, cp]:
            bord[c, cp] = bord[cp, c] = g[p1]
            point[c, cp] = point[cp, c] = p1
    mask = point >= 0
    bord[mask], bord_err[mask] = rho[point[mask]], err[point[mask]]
    np.fill_diagonal(bord, -1.0)
    np.fill_diagonal(bord_err, 0.0)
    owner = np.arange(m)
    rc, ec = rho[kept], err[kept]
    while True:
        weak = (rc[:, None] - bord < z * (ec[:, None] + bord_err)) | (
            rc[None, :] - bord < z * (ec[None, :] + bord_err)
        )
        weak &= np.triu(np.ones((m, m), dtype=bool), 1)
        if not weak.any():
            break
        i, j = divmod(int(np.argmax(np.where(weak, bord, -np.inf))), m)
        c1 = (rc[i] - bord[i, j]) / (ec[i] + bord_err[i, j])
        c2 = (rc[j] - bord[i, j]) / (ec[j] + bord_err[i, j])
        keep, drop = (j, i) if c1 < c2 else (i, j)
        owner[owner == drop] = keep
        bord[keep, drop] = bord[drop, keep] = -1.0
        bord_err[keep, drop] = bord_err[drop, keep] = 0.0
        for o in range(m):
            if o not in (keep, drop):
                if bord[keep, o] < bord[drop, o]:
                    bord[keep, o] = bord[o, keep] = bord[drop, o]
                    bord_err[keep, o] = bord_err[o, keep] = bord_err[drop, o]
                bord[drop, o] = bord[o, drop] = -1.0
                bord_err[drop, o] = bord_err[o, drop] = 0.0
    return np.unique(owner, return_inverse=True)[1][cl]


def baseline(a: dict, b: dict, labels: list[int], k_max: int) -> dict:
    out: dict[str, list] = {"id_twonn": [], "id_gride": [], "n_clusters": [], "ari": []}
    out |= {"label_overlap": [], "neighbourhood_overlap": []}
    codes = np.array(labels)
    for layer in a:
        x, y = a[layer].double().numpy(), b[layer].double().numpy()
        n = len(x)
        dist, full = NearestNeighbors(n_neighbors=k_max + 1, algorithm="brute").fit(x).kneighbors(x)
        full_b = NearestNeighbors(n_neighbors=31, algorithm="brute").fit(y).kneighbors(y)[1]
        mu = np.sort(np.log(dist[:, 2] / dist[:, 1]))
        keep = int(n * 0.9)
        out["id_twonn"].append((keep - 1) / (mu[:keep].sum() + (n - keep) * mu[keep - 1]))
        out["id_gride"] += [naive_gride(dist[:, 2 * s] / dist[:, s], s) for s in gride_scales(n)]
        d = naive_gride(dist[:, 32] / dist[:, 16], 16)
        log_v = d / 2 * math.log(math.pi) - gammaln(d / 2 + 1)
        log_den = math.log(16) - log_v - d * np.log(dist[:, 16]) - math.log(n)
        clusters = naive_adp(full[:, :101], log_den, np.full(n, 0.25), 16, 1.6)
        out["n_clusters"].append(clusters.max() + 1)
        out["ari"].append(adjusted_rand_score(codes, clusters))
        counts = np.bincount(codes)
        m = np.maximum(1, np.floor(0.3 * counts)).astype(int)[codes]
        hit = (codes[full[:, 1 : m.max() + 1]] == codes[:, None]) & (
            np.arange(m.max()) < m[:, None]
        )
        per = hit.sum(1) / m
        out["label_overlap"].append(np.mean([per[codes == c].mean() for c in np.unique(codes)]))
        shared = [len(np.intersect1d(full[i, 1:31], full_b[i, 1:31])) for i in range(n)]
        out["neighbourhood_overlap"].append(np.mean(shared) / 30)
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--manifold", type=int, default=6)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="device for idiomlens (the baseline is CPU)")
    p.add_argument("--no-baseline", action="store_true", help="time idiomlens only")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    a, b, labels = make_layers(args)
    reps = Representations.from_tensors(a, labels={"class": labels})
    other = Representations.from_tensors(b)
    geometry(Representations.from_tensors({0: a[0][:200]}), device=args.device, progress=False)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    res = geometry(reps, other=other, device=args.device, progress=False)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    ours_s = time.perf_counter() - t0
    df = res.to_dataframe()
    shape = f"{args.layers} layers x {args.n} x {args.dim}"
    print(
        f"idiomlens geometry ({shape}, device {args.device}, {torch.get_num_threads()} threads): {ours_s:.2f} s"
    )
    print(f"  per layer: {ours_s / args.layers:.3f} s; {len(df)} values")
    if args.no_baseline:
        return
    t0 = time.perf_counter()
    ref = baseline(a, b, labels, k_max=max(gride_scales(args.n)) * 2)
    base_s = time.perf_counter() - t0
    print(
        f"baseline (sklearn brute NearestNeighbors + naive numpy/scipy/loop estimators): {base_s:.2f} s"
    )
    print(f"speed-up (baseline / idiomlens): {base_s / ours_s:.1f}x")
    for metric, values in ref.items():
        got = df[df["metric"] == metric]["value"].to_numpy()
        diff = np.max(np.abs(got - np.asarray(values, dtype=float)))
        print(f"  max |idiomlens - baseline| {metric:22s} {diff:.2e}")


if __name__ == "__main__":
    main()
