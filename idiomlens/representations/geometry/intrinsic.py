"""Intrinsic dimension from neighbour-distance ratios: TwoNN and GRIDE (METHODS.md).

Both estimators model the ratio ``mu`` of two neighbour distances of a point, whose law
depends only on the intrinsic dimension ``d`` when the density is locally constant.

- **TwoNN** (Facco et al. 2017): ``mu = r2 / r1`` follows a Pareto law, ``log mu`` an
  exponential law of rate ``d``. The 10% largest ``mu`` (``fraction = 0.9``) are
  discarded, i.e. treated as censored at the largest kept value: with the ``n`` kept
  values sorted, ``d = (n - 1) / (sum_{i<=n} log mu_(i) + (N - n) log mu_(n))``, the
  unbiased maximum-likelihood estimate for a censored exponential sample. With
  ``fraction = 1`` it is exactly ``(N - 1) / sum(log mu)``, DADApy's
  ``compute_id_2NN(algorithm="ml")``. (Simply dropping the largest 10% and keeping
  ``(n - 1) / sum`` would overestimate ``d`` by about a third.) ``fit="linear"`` is
  DADApy's default ``compute_id_2NN()`` (``algorithm="base"``, Facco et al.'s original
  fit) instead: the least-squares slope through the origin of ``-log(1 - i / N)``
  against the kept ``log mu_(i)``, ``i = 1 .. n``. The two estimators differ by a few
  parts in 10,000 on 5,000 points (16.254 vs 16.245 on ``benchmarks/vs_dadapy``'s data).
- **GRIDE** (Denti et al. 2022) at scale ``n1``: ``mu = r_{2 n1} / r_{n1}``, whose
  density is ``d (mu^d - 1)^(n1 - 1) / (B(n1, n1) mu^(2 n1 d - d + 1))``
  (``n2 = 2 n1``). Following DADApy's ``return_id_scaling_gride``: ``mu`` equal to 1 is
  nudged by ``10 eps``; ``mu >= q50 + 20 (q95 - q50)`` are dropped (overlapping
  points); the likelihood's derivative is bisected on ``[0.001, 1000]`` to ``1e-7``
  (that bisection's answer, bit for bit, from a few Newton steps and a replay of its
  halvings: :func:`_bisection_answer`); the error is ``1 / sqrt(Fisher information)``.
  All scales of a layer are solved at once.

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randn(2000, 3, generator=g, dtype=torch.float64) @ torch.randn(3, 20, generator=g, dtype=torch.float64)
>>> from idiomlens.representations.geometry.knn import knn_graph
>>> graph = knn_graph(x, k=2, ranks=(1, 2, 4))
>>> round(twonn(graph.distance(1), graph.distance(2)), 0)
3.0
>>> ids, errs = gride(graph.rank_distances, graph.ranks, (1, 2))
>>> [round(v, 0) for v in ids.tolist()]
[3.0, 3.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["twonn", "gride", "gride_single", "gride_scales", "GRIDE_BOUNDS", "TWONN_FITS"]

#: bisection interval and precision of DADApy's ``return_id_scaling_gride`` defaults
GRIDE_BOUNDS = (0.001, 1000.0, 1e-7)
_EPS64 = float(torch.finfo(torch.float64).eps)
#: TwoNN estimators: maximum likelihood (METHODS.md) and DADApy's default linear fit
TWONN_FITS = ("ml", "linear")


def check_twonn_fit(fit: str) -> None:
    """One clear error for an unknown TwoNN ``fit``."""
    if fit not in TWONN_FITS:
        raise ValueError(f"unknown TwoNN fit {fit!r}; use one of {TWONN_FITS}")


def twonn(
    r1: Float[Tensor, " point"],
    r2: Float[Tensor, " point"],
    *,
    fraction: float = 0.9,
    fit: str = "ml",
) -> float:
    """TwoNN ID from first and second neighbour distances.

    ``fraction`` of the ``mu = r2 / r1`` are kept (the smallest). ``fit="ml"``: the rest
    are censored at the largest kept value (maximum likelihood, METHODS.md);
    ``fit="linear"``: DADApy's default linear fit (with ``fraction = 1`` it falls back
    to ``"ml"``, as DADApy does). See the module docstring.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    check_twonn_fit(fit)
    log_mu = torch.log(r2.double() / r1.double()).sort().values
    n_all = log_mu.numel()
    n = int(n_all * fraction)
    if n < 2:
        raise ValueError(f"TwoNN needs at least 2 kept ratios; {n_all} points x {fraction}")
    if fit == "linear" and n < n_all:
        y = -torch.log1p(-torch.arange(1, n + 1, dtype=torch.float64) / n_all)
        x = log_mu[:n]
        return float((x * y).sum() / (x * x).sum())
    total = log_mu[:n].sum() + (n_all - n) * log_mu[n - 1]
    return float((n - 1) / total)


def gride_scales(n_points: int, max_scale: int | None = None) -> tuple[int, ...]:
    """Scales ``n1 = 1, 2, 4, ...`` with ``n2 = 2 n1 < N`` (and ``n1 <= max_scale``).

    >>> gride_scales(100), gride_scales(100, max_scale=8)
    ((1, 2, 4, 8, 16, 32), (1, 2, 4, 8))
    """
    scales, n1 = [], 1
    while 2 * n1 < n_points and (max_scale is None or n1 <= max_scale):
        scales.append(n1)
        n1 *= 2
    return tuple(scales)


def _filter_mask(mu: Tensor) -> Tensor:
    """DADApy's ``_filter_mus``: keep ``mu < q50 + 20 (q95 - q50)``, per column."""
    if mu.device.type == "cpu":  # numpy's (the same linear interpolation): 5x torch's here
        q = torch.from_numpy(np.quantile(mu.numpy(), [0.95, 0.5], axis=0))
    else:
        q = torch.quantile(mu, torch.tensor([0.95, 0.5], dtype=mu.dtype, device=mu.device), dim=0)
    return mu < 20.0 * (q[0] - q[1]) + q[1]  # [point, scale]


def _neg_dloglik(d: Tensor, log_mu: Tensor, keep: Tensor, n1: Tensor, n2: Tensor) -> Tensor:
    """Minus the derivative of the GRIDE log-likelihood at ``d`` (one per scale)."""
    one_m = (1.0 - torch.exp(-d * log_mu)).clamp(min=2 * GRIDE_BOUNDS[2])
    terms = ((1 - n2 + n1) / one_m + n2 - 1.0) * log_mu
    return (terms * keep).sum(0) - (keep.sum(0) - 1) / d


def gride(
    rank_distances: Float[Tensor, "point rank"],
    ranks: Sequence[int],
    scales: Sequence[int],
) -> tuple[Float[Tensor, " scale"], Float[Tensor, " scale"]]:
    """GRIDE IDs and their errors at ``scales`` (``n1``; ``n2 = 2 n1``).

    ``rank_distances[:, j]`` is every point's distance to its ``ranks[j]``-th neighbour;
    it must hold both ``n1`` and ``2 n1`` for every scale. Returns float64 ``(id, err)``.
    """
    ranks = list(ranks)
    col = {r: j for j, r in enumerate(ranks)}
    missing = [r for s in scales for r in (s, 2 * s) if r not in col]
    if missing:
        raise KeyError(f"GRIDE needs neighbour distances at ranks {sorted(set(missing))}")
    r = rank_distances.double().clamp(min=_EPS64)  # DADApy's remove_zero_dists
    mu = r[:, [col[2 * s] for s in scales]] / r[:, [col[s] for s in scales]]  # [point, scale]
    mu = torch.where(mu == 1.0, mu + 10 * _EPS64, mu)
    keep = _filter_mask(mu).double()
    log_mu = torch.log(mu)
    n1 = torch.tensor(list(scales), dtype=torch.float64, device=mu.device)
    n2 = 2 * n1
    d = _bisection_answer(log_mu, keep, n1, n2)
    return d, _gride_error(d, mu, n1, n2)


def _bisect(log_mu: Tensor, keep: Tensor, n1: Tensor, n2: Tensor) -> Tensor:
    """DADApy's bisection of the derivative on ``GRIDE_BOUNDS``, the same halvings for
    every scale (35 evaluations)."""
    lo_val, hi_val, eps = GRIDE_BOUNDS
    lo, hi = torch.full_like(n1, lo_val), torch.full_like(n1, hi_val)
    l1 = _neg_dloglik(hi, log_mu, keep, n1, n2)
    while abs(hi_val - lo_val) > eps:
        mid = (lo + hi) / 2
        same = _neg_dloglik(mid, log_mu, keep, n1, n2) * l1 > 0
        hi, lo = torch.where(same, mid, hi), torch.where(same, lo, mid)
        hi_val = lo_val + (hi_val - lo_val) / 2
    return (lo + hi) / 2


def _bisection_answer(log_mu: Tensor, keep: Tensor, n1: Tensor, n2: Tensor) -> Tensor:
    """What :func:`_bisect` returns, in about a third of its evaluations.

    The derivative ``f`` rises with ``d`` (from minus infinity at 0 to ``sum n1 log mu``),
    so each halving keeps the half below its midpoint exactly when ``f(mid) > 0``, i.e.
    when the midpoint lies above the root. Bracketed Newton steps find the root to
    float64 precision; the halvings are then replayed by comparing their midpoints with
    it, and ``f`` is evaluated only at a midpoint within ``1e-9`` (relative) of the
    root. Scales whose bracket holds no sign change go through :func:`_bisect`.
    """
    lo_val, hi_val, eps = GRIDE_BOUNDS
    dev = n1.device
    lk = log_mu * keep
    m1 = keep.sum(0) - 1
    a = 1.0 - n1  # 1 - n2 + n1
    floor = 2 * eps

    def value_and_slope(d: Tensor) -> tuple[Tensor, Tensor]:
        e = torch.exp(-d * log_mu)
        raw = 1.0 - e
        one_m = raw.clamp(min=floor)
        f = ((a / one_m + n2 - 1.0) * lk).sum(0) - m1 / d
        slope = ((-a * e / one_m**2) * (raw > floor) * lk * log_mu).sum(0) + m1 / d**2
        return f, slope

    lo, hi = torch.full_like(n1, lo_val), torch.full_like(n1, hi_val)
    f_lo = _neg_dloglik(lo, log_mu, keep, n1, n2)
    f_hi = _neg_dloglik(hi, log_mu, keep, n1, n2)
    if not bool(((f_lo < 0) & (f_hi > 0)).all()):
        return _bisect(log_mu, keep, n1, n2)
    # f is concave as well, and f <= 0 at m1 / sum(n1 log mu) (exactly the root for
    # n1 = 1): a lower end for the bracket. Newton steps from above the root land below
    # it, and from below rise to it monotonically; so start at the largest of those
    # (IDs change slowly across scales), bisecting (geometrically) only a step that
    # leaves the bracket
    low = (m1 / (n1 * lk).sum(0)).clamp(lo_val, hi_val)
    lo = torch.maximum(lo, low)
    d = low.max().expand_as(low).clone()
    for _ in range(100):
        f, slope = value_and_slope(d)
        lo, hi = torch.where(f < 0, d, lo), torch.where(f > 0, d, hi)
        step = d - f / slope
        inside = ((step >= lo) & (step <= hi) & torch.isfinite(step)) | (f == 0)
        new = torch.where(inside, step, torch.sqrt(lo * hi))
        done = bool(((new - d).abs() <= 1e-12 * d).all())
        d = new
        if done:
            break
    roots = d.tolist()
    out = []
    for j, root in enumerate(roots):
        lo_s, hi_s, lv, hv = lo_val, hi_val, lo_val, hi_val
        while abs(hv - lv) > eps:
            mid = (lo_s + hi_s) / 2
            if abs(mid - root) > 1e-9 * root:
                above = mid > root
            else:  # too close to call: the derivative itself decides, as in the bisection
                at = torch.tensor([mid], dtype=n1.dtype, device=dev)
                sl = slice(j, j + 1)
                above = bool(_neg_dloglik(at, log_mu[:, sl], keep[:, sl], n1[sl], n2[sl]) > 0)
            hi_s, lo_s = (mid, lo_s) if above else (hi_s, mid)
            hv = lv + (hv - lv) / 2
        out.append((lo_s + hi_s) / 2)
    return torch.tensor(out, dtype=n1.dtype, device=dev)


def _gride_error(d: Tensor, mu: Tensor, n1: Tensor, n2: Tensor) -> Tensor:
    """``1 / sqrt(Fisher information)`` over all ratios (DADApy's ``_fisher_info_scaling``)."""
    one_m = (1.0 - mu ** (-d)).clamp(min=5 * _EPS64)
    tmp = (torch.log(mu) / one_m) ** 2 * mu ** (-d)
    info = mu.shape[0] / d**2 + ((n2 - n1 - 1) * tmp).sum(0)
    return 1.0 / torch.sqrt(info)


def gride_single(r_n1: Float[Tensor, " point"], r_n2: Float[Tensor, " point"], n1: int) -> float:
    """GRIDE ID at one scale ``n1`` from the ``n1``-th and ``2 n1``-th neighbour distances."""
    ids, _ = gride(torch.stack([r_n1, r_n2], 1), (n1, 2 * n1), (n1,))
    return float(ids[0])
