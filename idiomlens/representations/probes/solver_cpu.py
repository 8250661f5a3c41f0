"""The CPU path of the probe solver: one layer at a time, SciPy's L-BFGS-B, preconditioned.

Same problems and result as :func:`~idiomlens.representations.probes.solver.fit_softmax`
(objective, preconditioner, convergence test ``max |grad f| <= tol``), solved differently
because a CPU is not an accelerator. Measured on the 2-core development machine
(``benchmarks/bench_probes.py``, 12 layers x 3,000 training rows x 512): batching all layers
made every solver pass stream the whole batch from memory and kept finished layers waiting
for the slowest, and the batched L-BFGS's many small tensor operations cost more than the
passes themselves; one layer at a time with SciPy's compiled L-BFGS-B (the optimiser
scikit-learn uses) and numpy's BLAS for the passes is about twice as fast.

The preconditioner becomes a change of variables: with ``P = c X^T X / n + lambda I = L L^T``
(the Hessian at ``W = 0``) the solver works on ``V = W L`` and ``v_b = sqrt(c) b``, whose
Hessian at 0 is the identity, so L-BFGS-B needs a handful of iterations instead of tens.
A problem stops at the first evaluated point whose gradient (in ``W``, as the batched
solver and scikit-learn test it) meets the tolerance. A problem L-BFGS-B abandons before
that (its line search cannot resolve float32 losses very close to the optimum) is fitted
again by the batched solver, whose line search handles that case.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.linalg.blas
import scipy.linalg.lapack
import scipy.special
import torch
from jaxtyping import Float, Int
from scipy.optimize import minimize
from torch import Tensor

from ..._blas import batched_gram, blas_threads
from .solver import SoftmaxFit, SolverConfig, _make_problem, fit_softmax

__all__ = ["fit_softmax_cpu"]


class _Converged(Exception):
    """Raised from the objective at the first point that meets the tolerance."""


def fit_softmax_cpu(
    x: Float[Tensor, "layer row feature"],
    targets: Int[Tensor, "group row"],
    *,
    n_classes: int,
    C: Float[Tensor, "layer group"],
    config: SolverConfig | None = None,
    gram: Float[Tensor, "layer feature feature"] | None = None,
) -> SoftmaxFit:
    """:func:`~idiomlens.representations.probes.solver.fit_softmax` on the CPU, problem by
    problem (same arguments, same result).

    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(2, 200, 3, generator=g)
    >>> y = (x[0, :, 0] > 0).long()[None]
    >>> fit = fit_softmax_cpu(x, y, n_classes=2, C=torch.ones(2, 1))
    >>> ref = fit_softmax(x, y, n_classes=2, C=torch.ones(2, 1))
    >>> bool(fit.converged.all()), bool((fit.weight - ref.weight).abs().max() < 1e-3)
    (True, True)
    """
    cfg = config or SolverConfig()
    if x.device.type != "cpu":
        raise ValueError(f"fit_softmax_cpu needs CPU tensors, got {x.device}")
    problem = _make_problem(x, targets, n_classes, C)
    n_layer, _, d = x.shape
    n_group = targets.shape[0]
    width = 1 if n_classes == 2 else n_classes
    c = 0.25 if n_classes == 2 else 1.0 / n_classes
    theta = x.new_zeros(n_layer, n_group, width, d + 1)
    n_iter = torch.zeros(n_layer, n_group, dtype=torch.long)
    gnorm = torch.zeros(n_layer, n_group, dtype=torch.float64)
    loss = torch.zeros(n_layer, n_group, dtype=torch.float64)
    weight = problem.weight.numpy()  # [row, group]: 1/n_g on the group's rows
    onehot = problem.onehot.numpy()  # [row, group, K]
    active = problem.active.numpy()  # [group, K]
    if gram is None:
        gram = batched_gram(x).div_(x.shape[1])
    with blas_threads():  # one thread: see idiomlens._blas
        for layer in range(n_layer):
            xl = x[layer].numpy()
            g = gram[layer].numpy()
            lam = float(problem.penalty[layer].mean())  # one lambda per layer, as batched
            chol = _cholesky(c * g + lam * np.eye(d, dtype=g.dtype))
            for group in range(n_group):
                out = _solve(
                    xl, weight[:, group], onehot[:, group], active[group],
                    float(problem.penalty[layer, group]), chol, c, cfg,
                )  # fmt: skip
                theta[layer, group] = torch.from_numpy(out["theta"]).to(theta.dtype)
                n_iter[layer, group], gnorm[layer, group] = out["n_iter"], out["gnorm"]
                loss[layer, group] = out["loss"]
    converged = gnorm <= cfg.tol
    fit = SoftmaxFit(
        weight=theta[..., :-1],
        bias=theta[..., -1],
        active=problem.active,
        n_iter=n_iter,
        grad_norm=gnorm.to(x.dtype),
        loss=loss,
        converged=converged,
    )
    redo = (~converged).any(1).nonzero()[:, 0]
    if len(redo):  # the batched solver's line search reaches what L-BFGS-B could not
        again = fit_softmax(
            x[redo], targets, n_classes=n_classes, C=C[redo], config=cfg,
            gram=gram[redo],
        )  # fmt: skip
        for name in ("weight", "bias", "n_iter", "grad_norm", "loss", "converged"):
            getattr(fit, name)[redo] = getattr(again, name).to(getattr(fit, name).dtype)
    return fit


def _cholesky(p: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor of the symmetric ``p`` in its own dtype, else in float64, else
    ``None`` (no preconditioner: not positive definite even in float64).

    LAPACK's ``potrf`` on a Fortran-ordered copy, its strict upper triangle left as it
    was (``solve_triangular(lower=True)`` never reads it): 0.55 ms for 512 x 512 float32,
    against 1.6 ms with f2py's ``clean=1`` and 1.96 ms through ``scipy.linalg.cholesky``.
    """
    for a in (p, p.astype(np.float64)):
        potrf = scipy.linalg.lapack.spotrf if a.dtype == np.float32 else scipy.linalg.lapack.dpotrf
        factor, info = potrf(np.array(a.T, order="F"), lower=1, clean=0, overwrite_a=1)
        if info == 0:
            return factor.astype(p.dtype, order="F", copy=False)
    return None


def _solve(x, weight, onehot, active, penalty, chol, c, cfg) -> dict:
    """One ``(layer, group)`` problem; ``theta`` is ``[out, feature + 1]`` like the batched one."""
    n, d = x.shape
    binary = onehot.shape[1] == 2
    width = 1 if binary else onehot.shape[1]
    dtype = x.dtype
    w_rows = weight.astype(dtype)
    w_rows64 = weight.astype(np.float64)
    y1 = onehot[:, 1].astype(dtype) if binary else None
    hot = onehot.astype(dtype)
    root_c = np.sqrt(c)
    state: dict = {}
    # the factor in the solver's float64 (for unpack) and in the data's dtype (gradients)
    factors = {}
    if chol is not None:
        for f in (chol.astype(np.float64, order="F"), chol):
            factors.setdefault(f.dtype, (f, scipy.linalg.blas.get_blas_funcs("trsv", (f,))))

    def solve(rhs: np.ndarray, trans: int) -> np.ndarray:
        """``chol^-1 rhs`` (``trans=0``) or ``chol^-T rhs`` (1), in ``rhs``'s dtype; one
        right-hand side (two classes) through BLAS ``trsv``, in half solve_triangular's time."""
        factor, trsv = factors[rhs.dtype]
        if rhs.shape[1] == 1:
            return trsv(factor, rhs[:, 0], lower=1, trans=trans)[:, None]
        return scipy.linalg.solve_triangular(factor, rhs, trans=trans, lower=True, check_finite=False)  # fmt: skip

    def unpack(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vw = v[: width * d].reshape(width, d)
        w = vw if chol is None else solve(vw.T, 1).T  # float64, as L-BFGS-B's v
        return w.astype(dtype), (v[width * d :] / root_c).astype(dtype)

    def evaluate(w: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        z = x @ w.T + b  # [row, out]
        if binary:
            z1 = z[:, 0]
            # log(1 + e^z) as np.logaddexp(0, z) computes it, in a third of its time
            per_row = np.maximum(z1, 0) + np.log1p(np.exp(-np.abs(z1))) - y1 * z1
            resid = (scipy.special.expit(z1) - y1)[:, None]
        else:
            z = np.where(active, z, -np.inf)
            top = z.max(1, keepdims=True)
            lse = top + np.log(np.exp(z - top).sum(1, keepdims=True))
            per_row = lse[:, 0] - (np.where(active, z, 0.0) * hot).sum(1)
            resid = np.exp(z - lse) - hot
        resid = resid * w_rows[:, None]
        ce = float(per_row.astype(np.float64) @ w_rows64)
        w64 = w.astype(np.float64)
        value = ce + 0.5 * penalty * float((w64 * w64).sum())
        grad_w = resid.T @ x + penalty * w
        return value, grad_w, resid.sum(0)

    def objective(v: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = unpack(v)
        value, grad_w, grad_b = evaluate(w, b)
        top = max(float(np.abs(grad_w).max()), float(np.abs(grad_b).max()))
        state.update(w=w, b=b, value=value, gnorm=top)
        if top <= cfg.tol:
            raise _Converged
        gv = grad_w if chol is None else solve(grad_w.T, 0).T
        return value, np.concatenate([gv.ravel(), grad_b / root_c]).astype(np.float64)

    iterations = [0]

    def count(*_: object) -> None:
        iterations[0] += 1

    try:
        # start at the Newton step from 0 (the preconditioned gradient at 0, reversed),
        # which is also the batched solver's first step
        start = -objective(np.zeros(width * (d + 1)))[1]
        found = minimize(
            objective, start, jac=True, method="L-BFGS-B", callback=count,
            options={"maxiter": cfg.max_iter, "maxcor": cfg.history, "gtol": 0.0, "ftol": 0.0,
                     "maxls": cfg.max_backtracks},
        )  # fmt: skip
    except _Converged:
        pass
    else:  # stopped short of the tolerance: report the solver's own final point
        w, b = unpack(found.x)
        value, grad_w, grad_b = evaluate(w, b)
        top = max(float(np.abs(grad_w).max()), float(np.abs(grad_b).max()))
        state.update(w=w, b=b, value=value, gnorm=top)
    theta = np.concatenate([state["w"], state["b"][:, None]], 1)
    return {
        "theta": theta,
        "n_iter": iterations[0],
        "gnorm": state["gnorm"],
        "loss": state["value"],
    }
