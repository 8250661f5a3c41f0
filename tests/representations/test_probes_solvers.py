"""The CPU solver (SciPy L-BFGS-B per problem) and the batched solver solve the same problems.

The batched one runs on accelerators; on CPU ``train_probes`` uses the other. Both are
checked against scikit-learn through ``train_probes`` elsewhere; here they are checked
against each other on what scikit-learn cannot express: several groups sharing rows,
rows left out (``-1``, as the CV folds do), a class absent from a group, a per-group ``C``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from idiomlens.representations.probes import solver_cpu
from idiomlens.representations.probes.solver import SolverConfig, fit_softmax
from idiomlens.representations.probes.solver_cpu import fit_softmax_cpu


def _problem(n_classes: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(n_classes)
    n, d = 240, 6
    x = torch.randn(3, n, d, generator=g, dtype=dtype) * torch.linspace(0.2, 3.0, d, dtype=dtype)
    y = (x[1, :, 0] + 0.5 * torch.randn(n, generator=g, dtype=dtype) > 0).long()
    if n_classes > 2:
        y = y + (x[2, :, 1] > 0.8).long() * (n_classes - 1 - y)  # a third class from layer 2
    left_out = torch.where(torch.arange(n) % 4 == 0, torch.full_like(y, -1), y)  # a CV fold
    no_last = torch.where(y == n_classes - 1, torch.full_like(y, -1), y)  # a class absent
    groups = [y, left_out, y[torch.randperm(n, generator=g)]]
    if n_classes > 2:
        groups.append(no_last)
    targets = torch.stack(groups)
    C = torch.tensor([1.0, 0.1, 10.0, 1.0][: targets.shape[0]], dtype=dtype).expand(3, -1)
    return x, targets, C.contiguous()


@pytest.mark.parametrize("n_classes", [2, 3])
def test_both_solvers_reach_the_same_minimiser(n_classes):
    x, targets, C = _problem(n_classes)
    cfg = SolverConfig(tol=1e-10)
    cpu = fit_softmax_cpu(x, targets, n_classes=n_classes, C=C, config=cfg)
    batched = fit_softmax(x, targets, n_classes=n_classes, C=C, config=cfg)
    assert bool(cpu.converged.all()) and bool(batched.converged.all())
    torch.testing.assert_close(cpu.weight, batched.weight, atol=1e-7, rtol=0)
    torch.testing.assert_close(cpu.bias, batched.bias, atol=1e-7, rtol=0)
    torch.testing.assert_close(cpu.loss, batched.loss, atol=1e-12, rtol=0)
    assert torch.equal(cpu.predict(x), batched.predict(x))
    if n_classes > 2:  # the absent class keeps zero weights and never wins
        assert float(cpu.weight[:, 3, n_classes - 1].abs().max()) == 0.0
        assert not bool((cpu.predict(x)[:, 3] == n_classes - 1).any())


def test_float32_problems_agree_and_converge():
    x, targets, C = _problem(2, torch.float32)
    cpu = fit_softmax_cpu(x, targets, n_classes=2, C=C, config=SolverConfig(tol=1e-5))
    batched = fit_softmax(x, targets, n_classes=2, C=C, config=SolverConfig(tol=1e-5))
    assert bool(cpu.converged.all())
    assert float((cpu.weight - batched.weight).abs().max()) < 1e-3


def test_a_problem_lbfgsb_abandons_is_finished_by_the_batched_solver(monkeypatch):
    x, targets, C = _problem(2)
    real = solver_cpu.minimize

    def gives_up_on_layer_one(fun, start, **kw):
        if gives_up_on_layer_one.calls in (3, 4, 5):  # every group of layer 1
            gives_up_on_layer_one.calls += 1
            return real(fun, start, **{**kw, "options": {**kw["options"], "maxiter": 1}})
        gives_up_on_layer_one.calls += 1
        return real(fun, start, **kw)

    gives_up_on_layer_one.calls = 0
    monkeypatch.setattr(solver_cpu, "minimize", gives_up_on_layer_one)
    cfg = SolverConfig(tol=1e-9)
    fit = fit_softmax_cpu(x, targets, n_classes=2, C=C, config=cfg)
    assert gives_up_on_layer_one.calls == 9
    assert bool(fit.converged.all())
    ref = fit_softmax(x, targets, n_classes=2, C=C, config=cfg)
    torch.testing.assert_close(fit.weight, ref.weight, atol=1e-6, rtol=0)


def test_cpu_solver_refuses_other_devices():
    x, targets, C = _problem(2)
    with pytest.raises(ValueError, match="needs CPU tensors"):
        fit_softmax_cpu(x.to("meta"), targets, n_classes=2, C=C)


def test_layers_fitted_concurrently_equal_one_after_another():
    from idiomlens.representations.probes import train_probes
    from idiomlens.representations.probes.synthetic import planted_representations

    reps = planted_representations(n=300, d_model=12, layers=4, signal=(1, 2), seed=5)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = train_probes(reps, layers_per_batch=1, progress=False)
        torch.set_num_threads(2)  # two layers at a time, one thread each
        two = train_probes(reps, layers_per_batch=1, progress=False)
        assert torch.get_num_threads() == 2  # restored after the concurrent section
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one.test_pred, two.test_pred)
    assert torch.equal(one.control_pred, two.control_pred)
    torch.testing.assert_close(one.coef, two.coef, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpu_cholesky_factor_is_lower_and_solves_like_scipy(dtype):
    """``potrf`` leaves the strict upper triangle unwritten; the triangular solves the
    solver makes with it equal those with scipy's clean factor."""
    import scipy.linalg

    from idiomlens.representations.probes.solver_cpu import _cholesky

    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 40))
    p = (a.T @ a / 300 + 1e-3 * np.eye(40)).astype(dtype)
    got = _cholesky(p)
    want = scipy.linalg.cholesky(p.astype(np.float64), lower=True)
    assert got.dtype == dtype
    np.testing.assert_allclose(
        np.tril(got), want, rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-6
    )
    rhs = rng.standard_normal((40, 3)).astype(dtype)
    for trans in (0, 1):
        np.testing.assert_allclose(
            scipy.linalg.solve_triangular(got, rhs, trans=trans, lower=True),
            scipy.linalg.solve_triangular(want, rhs, trans=trans, lower=True),
            rtol=1e-3 if dtype == np.float32 else 1e-9, atol=1e-5,
        )  # fmt: skip
    assert _cholesky(-np.eye(3, dtype=dtype)) is None  # not positive definite
