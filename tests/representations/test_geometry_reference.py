"""The vectorised geometry estimators equal naive references (plain loops / numpy / scipy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from scipy.special import betaln

from idiomlens.representations.geometry.adp import adp_clusters, knn_log_density
from idiomlens.representations.geometry.intrinsic import gride, gride_scales, twonn
from idiomlens.representations.geometry.knn import EXACT_RANKS, knn_graph, unique_rows
from idiomlens.representations.geometry.overlap import label_overlap_from_graph, neighbour_overlap


def _data(seed: int, n: int, d: int, blobs: int = 0, spread: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    if blobs:
        x += rng.standard_normal((blobs, d))[rng.integers(0, blobs, n)] * spread
    return x


def naive_neighbours(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Full float64 distance matrix; every row's other points, nearest first."""
    dist = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(dist, np.inf)
    order = np.argsort(dist, axis=1, kind="stable")[:, :-1]
    return order, np.take_along_axis(dist, order, 1)


@pytest.fixture(scope="module")
def cloud():
    x = _data(0, 400, 6, blobs=5, spread=2.5) + 50.0  # offset: centring must not matter
    return x, *naive_neighbours(x)


def test_knn_graph_equals_the_full_distance_matrix(cloud):
    x, order, dist = cloud
    ranks = (1, 2, 3, 16, 64, 200, 399)
    g = knn_graph(torch.tensor(x), k=120, ranks=ranks, device="cpu")
    assert torch.equal(g.indices, torch.tensor(order[:, :120]))
    want = dist[:, [r - 1 for r in ranks]]
    near = [i for i, r in enumerate(ranks) if r <= EXACT_RANKS]
    far = [i for i, r in enumerate(ranks) if r > EXACT_RANKS]
    np.testing.assert_allclose(g.rank_distances[:, near].numpy(), want[:, near], rtol=1e-12)
    np.testing.assert_allclose(g.rank_distances[:, far].numpy(), want[:, far], rtol=1e-5)
    assert g.rank_distances.dtype == torch.float64


def _torch_sorted_search(x, x32, half_sq, depth, far, near, workspace):
    """The torch block path, 7 rows per block, each block ranked by a full sort."""
    from idiomlens.representations.geometry import knn

    scratch = workspace.take(7, x32.shape[0], x32.device)
    return knn._search_torch(x, x32, half_sq, depth, far, near, scratch)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("layout", ["symmetric", "strips"])
def test_knn_graph_cpu_search_layouts_agree_with_the_torch_sort_path(
    cloud, monkeypatch, threads, layout
):
    from idiomlens.representations.geometry import knn

    x = torch.tensor(cloud[0])
    with monkeypatch.context() as m:
        m.setattr(knn, "_search_cpu", _torch_sorted_search)
        m.setattr(
            knn,
            "_rank_block",
            lambda h, depth: (h.sort(dim=1).values[:, :depth], h.argsort(dim=1)[:, :depth]),
        )
        ref = knn_graph(x, k=30, ranks=(2, 40, 300), device="cpu")
    monkeypatch.setattr(knn, "TASK_ROWS", 23)  # several tasks, a ragged last one
    if layout == "strips":  # 9-row strips instead of the whole matrix
        monkeypatch.setattr(knn, "SYMMETRIC_BYTES", 0)
        monkeypatch.setitem(knn.BLOCK_BYTES, "cpu", 4 * 400 * 9)
    else:  # the whole matrix, beyond the strip budget: only if the free memory allows
        monkeypatch.setitem(knn.BLOCK_BYTES, "cpu", 4 * 400 * 9)
        assert knn._symmetric(400)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = knn_graph(x, k=30, ranks=(2, 40, 300), device="cpu")
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(got.indices, ref.indices)
    torch.testing.assert_close(got.rank_distances, ref.rank_distances, rtol=1e-12, atol=0)


@pytest.mark.parametrize("cols", [300, 4001])
@pytest.mark.parametrize("levels", [3, 40, 2000, None])
def test_cpu_row_selection_equals_a_stable_sort(levels, cols):
    """Ties at and below each row's bound are kept in column order, as a stable sort,
    whether the bound is a group-minima bound (long rows, small depths) or exact; rows
    with many ties at the bound are ranked one by one."""
    from idiomlens.representations.geometry.ranking import _smallest

    rng = np.random.default_rng(levels or 0)
    h = rng.standard_normal((61, cols)).astype(np.float32)
    if levels:  # few distinct values: ties everywhere, at the bound too
        h = rng.integers(0, levels, h.shape).astype(np.float32)
    h[np.arange(61), np.arange(61)] = np.inf
    h[5, 100:] = h[5, 99]  # one row mostly one value
    for depth in (1, 17, 100, 299):
        values, cols = _smallest(h, depth)
        want = np.argsort(h, axis=1, kind="stable")[:, :depth]
        assert np.array_equal(cols, want), depth
        assert np.array_equal(values, np.take_along_axis(h, want, 1))


@pytest.mark.parametrize("shape", [(0, 5), (1, 1), (3, 7), (61, 4001), (256, 5000)])
@pytest.mark.parametrize("density", [0.0, 0.02, 0.5, 1.0])
def test_packed_bit_positions_equal_flatnonzero(shape, density):
    from idiomlens.representations.geometry.ranking import _flat_true

    mask = np.random.default_rng(shape[0]).random(shape) < density
    assert np.array_equal(_flat_true(mask), np.flatnonzero(mask))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_exact_distances_equal_float64_differences_in_numpy_and_torch(dtype):
    from idiomlens.representations.geometry.knn import _exact_torch, exact_distances

    rng = np.random.default_rng(8)
    x = torch.tensor(rng.standard_normal((90, 7)) * 3 + 100.0, dtype=dtype)  # offset
    cols = torch.tensor(rng.integers(0, 90, (40, 5)))
    ref = x.double().numpy()
    want = np.linalg.norm(ref[cols.numpy()] - ref[30:70, None, :], axis=-1)
    for got in (exact_distances(x, cols, start=30), _exact_torch(x, cols, 30)):
        assert got.dtype == torch.float64
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_unique_rows_keeps_the_first_of_each_row():
    x = torch.tensor([[1.0, 0.0], [2.0, 2.0], [1.0, 0.0], [0.0, 0.0], [2.0, 2.0], [1.0, 0.0]])
    naive = [i for i in range(len(x)) if not any(torch.equal(x[i], x[j]) for j in range(i))]
    assert unique_rows(x).tolist() == naive == [0, 1, 3]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_unique_rows_equals_a_loop_when_first_coordinates_repeat(dtype):
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.integers(0, 3, (300, 4)), dtype=dtype)  # many shared first values
    x[7] = x[250]
    x[11, 1:] = -0.0
    x[12] = x[11].abs()  # -0.0 and 0.0 are the same number
    naive = [i for i in range(len(x)) if not any(bool((x[i] == x[j]).all()) for j in range(i))]
    assert unique_rows(x).tolist() == naive
    distinct = torch.tensor(rng.standard_normal((50, 3)), dtype=dtype)
    assert unique_rows(distinct).tolist() == list(range(50))
    assert unique_rows(torch.cat([distinct, distinct[:5]])).tolist() == list(range(50))


def naive_twonn(mu: np.ndarray, fraction: float) -> float:
    logs = sorted(math.log(m) for m in mu)
    n = int(len(logs) * fraction)
    total = sum(logs[:n]) + (len(logs) - n) * logs[n - 1]
    return (n - 1) / total


@pytest.mark.parametrize("fraction", [0.9, 1.0, 0.5])
def test_twonn_equals_a_loop(cloud, fraction):
    _, _, dist = cloud
    got = twonn(torch.tensor(dist[:, 0]), torch.tensor(dist[:, 1]), fraction=fraction)
    assert got == pytest.approx(naive_twonn(dist[:, 1] / dist[:, 0], fraction), rel=1e-12)


def dadapy_linear_twonn(mu: np.ndarray, fraction: float) -> float:
    """DADApy 0.3.4's ``_compute_id_2NN(algorithm="base")``, step by step (curve_fit)."""
    from scipy.optimize import curve_fit

    n_all = mu.shape[0]
    n_eff = int(n_all * fraction)
    log_mu = np.sort(np.log(mu))[:n_eff]
    y = -np.log(1 - np.arange(1, n_eff + 1) / n_all)
    slope, _ = curve_fit(lambda x, m: m * x, log_mu, y)
    return float(slope[0])


@pytest.mark.parametrize("fraction", [0.9, 0.5])
def test_twonn_linear_fit_equals_dadapys_curve_fit(cloud, fraction):
    _, _, dist = cloud
    r1, r2 = torch.tensor(dist[:, 0]), torch.tensor(dist[:, 1])
    got = twonn(r1, r2, fraction=fraction, fit="linear")
    assert got == pytest.approx(dadapy_linear_twonn(dist[:, 1] / dist[:, 0], fraction), rel=1e-6)
    assert got != pytest.approx(twonn(r1, r2, fraction=fraction), rel=1e-6)  # another estimator
    # DADApy switches the linear fit to maximum likelihood when every ratio is kept
    assert twonn(r1, r2, fraction=1.0, fit="linear") == twonn(r1, r2, fraction=1.0)
    with pytest.raises(ValueError, match="unknown TwoNN fit 'lsq'"):
        twonn(r1, r2, fit="lsq")


def naive_gride(mu: np.ndarray, n1: int) -> float:
    """Maximise the GRIDE likelihood directly (scipy), on DADApy's filtered ratios."""
    mu = np.where(mu == 1, mu + 10 * np.finfo(float).eps, mu)
    q95, q50 = np.percentile(mu, [95, 50])
    mu = mu[mu < 20 * (q95 - q50) + q50]
    n2 = 2 * n1

    def nll(d: float) -> float:
        ll = (len(mu) - 1) * math.log(d) + np.sum((n2 - n1 - 1) * np.log(mu**d - 1))
        ll += -len(mu) * betaln(n2 - n1, n1) - np.sum(((n2 - 1) * d + 1) * np.log(mu))
        return -ll

    return minimize_scalar(nll, bounds=(0.01, 100), method="bounded", options={"xatol": 1e-10}).x


def test_gride_maximises_the_likelihood_at_every_scale(cloud):
    _, _, dist = cloud
    scales = gride_scales(dist.shape[0])
    ranks = sorted({r for s in scales for r in (s, 2 * s)})
    ids, errs = gride(torch.tensor(dist[:, [r - 1 for r in ranks]]), ranks, scales)
    for s, got in zip(scales, ids.tolist(), strict=True):
        assert got == pytest.approx(naive_gride(dist[:, 2 * s - 1] / dist[:, s - 1], s), rel=1e-6)
    assert (errs > 0).all()


def test_gride_newton_answer_equals_dadapys_bisection_exactly():
    """The root found by Newton steps, with the halvings replayed, is the bisection's own
    answer, bit for bit: Pareto ratios of many sizes and dimensions, some all near 1."""
    from idiomlens.representations.geometry import intrinsic

    rng = np.random.default_rng(0)
    n1 = torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=torch.float64)
    for trial in range(60):
        n, dim = int(rng.integers(5, 3000)), float(rng.uniform(0.5, 60))
        mu = torch.tensor(rng.pareto(dim, size=(n, 4)) + 1.0)
        if trial % 7 == 0:  # a third of the points duplicated at both ranks
            mu[: n // 3] = 1.0 + 10 * np.finfo(float).eps
        keep, log_mu = intrinsic._filter_mask(mu).double(), torch.log(mu)
        want = intrinsic._bisect(log_mu, keep, n1, 2 * n1)
        assert torch.equal(intrinsic._bisection_answer(log_mu, keep, n1, 2 * n1), want), trial


def naive_adp(
    nbr: np.ndarray,
    log_den: np.ndarray,
    err: np.ndarray,
    k: int,
    z: float,
    fallbacks: list[int] | None = None,
) -> np.ndarray:
    """DADApy's ADP (Cython ``_compute_clustering``, halo=False) written as plain loops;
    the points placed by the fallback are appended to ``fallbacks``."""
    fallbacks = [] if fallbacks is None else fallbacks
    n, maxk = nbr.shape
    full = np.concatenate([np.arange(n)[:, None], nbr], 1)
    rho = log_den - np.min(log_den - z * err) + 1
    g = rho - err
    centres = [i for i in range(n) if not any(g[i] < g[full[i, j]] for j in range(1, k + 1))]
    remover: dict[int, int] = {}  # removed centre -> its highest-g remover (ties: the last)
    for c in centres:
        for i in range(n):
            for j in range(1, k + 1):
                if full[i, j] == c and g[i] > g[c] and (c not in remover or g[i] >= g[remover[c]]):
                    remover[c] = i
    kept = [c for c in centres if c not in remover]
    cl = -np.ones(n, dtype=int)
    for idx, c in enumerate(kept):
        cl[c] = idx
    order = list(np.argsort(-g, kind="stable"))
    for ele in order:
        nn = 0
        while cl[ele] == -1 and nn < maxk:
            nn += 1
            cl[ele] = cl[full[ele, nn]]
        if cl[ele] == -1:  # the fallback: through the removers of centres around it
            fallbacks.append(int(ele))
            cands = [remover[j] for j in full[ele] if j in remover]
            cands = [i for i in cands if order.index(i) < order.index(ele)]
            best = max(cands or kept, key=lambda i: g[i])  # the first of equal maxima
            cl[ele] = cl[best]
    m = len(kept)
    bord, bord_err, point = np.zeros((m, m)), np.zeros((m, m)), -np.ones((m, m), dtype=int)
    for c in range(m):
        for p1 in [i for i in range(n) if cl[i] == c and i not in kept]:
            pp = -1
            for j in range(1, k + 1):
                if cl[full[p1, j]] != c:
                    pp, cp = full[p1, j], cl[full[p1, j]]
                    break
            if pp != -1:
                for j in range(1, maxk + 1):
                    if full[pp, j] == p1:
                        break
                    if cl[full[pp, j]] == c:
                        pp = -1
                        break
            if pp != -1 and g[p1] > bord[c, cp]:
                bord[c, cp] = bord[cp, c] = g[p1]
                point[c, cp] = point[cp, c] = p1
    for i in range(m):
        for j in range(m):
            if i != j and point[i, j] != -1:
                bord[i, j], bord_err[i, j] = rho[point[i, j]], err[point[i, j]]
        bord[i, i], bord_err[i, i] = -1.0, 0.0
    alive, members = [True] * m, {c: {c} for c in range(m)}
    while True:
        best, pair = -np.inf, None
        for i in range(m - 1):
            for j in range(i + 1, m):
                a1, a2 = rho[kept[i]] - bord[i, j], rho[kept[j]] - bord[i, j]
                e1, e2 = z * (err[kept[i]] + bord_err[i, j]), z * (err[kept[j]] + bord_err[i, j])
                if (a1 < e1 or a2 < e2) and bord[i, j] > best:
                    best, pair = bord[i, j], (i, j)
        if pair is None:
            break
        i, j = pair
        c1 = (rho[kept[i]] - bord[i, j]) / (err[kept[i]] + bord_err[i, j])
        c2 = (rho[kept[j]] - bord[i, j]) / (err[kept[j]] + bord_err[i, j])
        keep, drop = (j, i) if c1 < c2 else (i, j)
        alive[drop] = False
        members[keep] |= members.pop(drop)
        bord[keep, drop] = bord[drop, keep] = -1.0
        bord_err[keep, drop] = bord_err[drop, keep] = 0.0
        for o in range(m):
            if o not in (keep, drop):
                if bord[keep, o] < bord[drop, o]:
                    bord[keep, o] = bord[o, keep] = bord[drop, o]
                    bord_err[keep, o] = bord_err[o, keep] = bord_err[drop, o]
                bord[drop, o] = bord[o, drop] = -1.0
                bord_err[drop, o] = bord_err[o, drop] = 0.0
    final = {old: new for new, old in enumerate(c for c in range(m) if alive[c])}
    owner = {c: o for o, cs in members.items() for c in cs}
    return np.array([final[owner[c]] for c in cl])


@pytest.mark.parametrize("seed,z", [(1, 0.5), (1, 1.0), (4, 1.6), (6, 1.0)])
def test_adp_equals_the_loop_reference(seed, z):
    x = _data(seed, 360, 3, blobs=6, spread=3.0)
    nbr, dist = naive_neighbours(x)
    nbr = nbr[:, :40]
    log_den, err = knn_log_density(torch.tensor(dist[:, 15]), 2.7, 16)
    got = adp_clusters(torch.tensor(nbr), log_den, err, k=16, Z=z)
    want = naive_adp(nbr, log_den.numpy(), err.numpy(), 16, z)
    assert got.max() > 0  # several clusters: the merging ran
    assert got.tolist() == want.tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adp_fallback_equals_the_loop_reference(seed):
    """Densities unrelated to the distances (a density of another k, say) leave points
    with neither a centre nor a denser point among their neighbours: the fallback."""
    rng = np.random.default_rng(seed)
    x = _data(seed, 200, 3, blobs=5, spread=3.0)
    nbr, _ = naive_neighbours(x)
    nbr = nbr[:, :4]
    log_den = torch.tensor(rng.normal(size=200) * 2.0)
    err = torch.full_like(log_den, 0.3)
    got = adp_clusters(torch.tensor(nbr), log_den, err, k=3, Z=1.0)
    fallbacks: list[int] = []
    want = naive_adp(nbr, log_den.numpy(), err.numpy(), 3, 1.0, fallbacks)
    assert len(fallbacks) > 0  # the fallback ran
    assert got.tolist() == want.tolist()


def test_knn_log_density_equals_the_formula():
    r = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    d, k = 3.3, 7
    want = [
        math.log(k) - math.log(math.pi ** (d / 2) / math.gamma(d / 2 + 1) * ri**d) - math.log(3)
        for ri in r.tolist()
    ]
    log_den, err = knn_log_density(r, d, k)
    np.testing.assert_allclose(log_den.numpy(), want, rtol=1e-12)
    assert err.tolist() == [1 / math.sqrt(k)] * 3


def test_overlaps_equal_loops(cloud):
    x, order, _ = cloud
    rng = np.random.default_rng(5)
    y = x + rng.standard_normal(x.shape) * 0.8
    order_y, _ = naive_neighbours(y)
    k = 12
    want = np.mean([len(set(order[i, :k]) & set(order_y[i, :k])) / k for i in range(len(x))])
    got = neighbour_overlap(torch.tensor(order), torch.tensor(order_y), k=k)
    assert got == pytest.approx(want, abs=1e-12) and 0.1 < got < 0.95

    codes = rng.integers(0, 4, len(x))
    codes[:40] = 3  # unbalanced classes
    f = 0.3
    per_class: dict[int, list[float]] = {}
    for i, c in enumerate(codes):
        m = max(1, int(f * (codes == c).sum()))
        per_class.setdefault(int(c), []).append(np.mean(codes[order[i, :m]] == c))
    want = np.mean([np.mean(v) for v in per_class.values()])
    got = label_overlap_from_graph(torch.tensor(order), torch.tensor(codes), f)
    assert got == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_adjusted_rand_index_equals_scikit_learn(seed):
    from sklearn.metrics import adjusted_rand_score

    from idiomlens.representations.geometry.metrics import adjusted_rand_index

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 3000))
    labels = rng.integers(0, int(rng.integers(1, 8)), n)
    noisy = np.where(rng.random(n) < 0.3, rng.integers(0, 9, n), labels * 7 + 3)  # sparse ids
    cases = [
        (labels, noisy),
        (labels, labels[::-1].copy()),
        (labels, np.zeros(n, int)),  # one cluster
        (labels, np.arange(n)),  # every point its own cluster
        (np.zeros(n, int), np.zeros(n, int)),
        (np.arange(n), np.arange(n)[::-1].copy()),
    ]
    for a, b in cases:
        got = adjusted_rand_index(torch.tensor(a), torch.tensor(b))
        assert got == pytest.approx(adjusted_rand_score(a, b), abs=1e-12), (n, a[:5], b[:5])


def test_shared_neighbours_and_first_true_equal_python_loops():
    """The numpy paths of the overlap count and ADP's first-true scan, against loops."""
    from idiomlens.representations.geometry.adp import _first_true
    from idiomlens.representations.geometry.overlap import neighbour_overlap_points

    rng = np.random.default_rng(5)
    a = torch.tensor(np.stack([rng.permutation(60)[:12] for _ in range(40)]))
    b = torch.tensor(np.stack([rng.permutation(60)[:15] for _ in range(40)]))
    got = neighbour_overlap_points(a, b, k=10)
    want = [len(set(a[i, :10].tolist()) & set(b[i, :10].tolist())) / 10 for i in range(40)]
    assert got.tolist() == want
    mask = rng.random((50, 9)) < 0.15
    has, first = _first_true(mask)
    for row, h, f in zip(mask.tolist(), has.tolist(), first.tolist(), strict=True):
        assert h == any(row) and f == (row.index(True) if any(row) else 0)
    assert first.dtype == np.int64
