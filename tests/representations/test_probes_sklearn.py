"""Probes against scikit-learn: same split, same standardisation, same objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.preprocessing import StandardScaler

from idiomlens.representations.probes import train_probes
from idiomlens.representations.probes.synthetic import planted_representations
from idiomlens.representations.probes.train import _folds


def _sklearn_objective(model, x, y, C):
    """scikit-learn's objective divided by the number of rows (ours): mean CE + ||W||^2 / (2 C n)."""
    p = np.clip(model.predict_proba(x), 1e-300, None)
    codes = np.searchsorted(model.classes_, y)
    ce = -np.log(p[np.arange(len(y)), codes]).mean()
    return ce + 0.5 * (model.coef_**2).sum() / (C * len(y))


def _reference(reps, result, layer, C=1.0):
    """StandardScaler + LogisticRegression on the result's own split, in float64."""
    y = np.asarray(reps.labels["label"])
    x = reps.vectors(layer).double().numpy()
    tr, te = result.train_index.numpy(), result.test_index.numpy()
    scaler = StandardScaler().fit(x[tr])
    model = LogisticRegression(C=C, tol=1e-10, max_iter=20000).fit(scaler.transform(x[tr]), y[tr])
    acc = float((model.predict(scaler.transform(x[te])) == y[te]).mean())
    return model, acc, _sklearn_objective(model, scaler.transform(x[tr]), y[tr], C)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_accuracy_coefficients_and_loss_match_sklearn(n_classes):
    reps = planted_representations(
        n=480, d_model=24, layers=4, signal=(1, 2), n_classes=n_classes, strength=0.8, seed=3
    )
    result = train_probes(reps, control=False, tol=1e-6, progress=False)
    assert bool(result.converged[:, 0].all())
    for i, layer in enumerate(reps.layers):
        model, acc, loss = _reference(reps, result, layer)
        assert abs(float(result.accuracy[i]) - acc) <= 0.02, (layer, float(result.accuracy[i]), acc)
        ours = result.coef[i].double().numpy()
        scale = np.abs(model.coef_).max()
        assert np.abs(ours - model.coef_).max() <= 2e-3 * max(scale, 1.0), layer
        assert np.abs(result.intercept[i].double().numpy() - model.intercept_).max() <= 2e-3 * max(
            scale, 1.0
        )
        assert float(result.loss[i, 0]) == pytest.approx(loss, rel=1e-4, abs=1e-6)


def test_float64_solver_equals_sklearn_tightly():
    reps = planted_representations(n=300, d_model=12, layers=2, signal=(0,), n_classes=3, seed=1)
    result = train_probes(reps, control=False, dtype=torch.float64, tol=1e-9, progress=False)
    for i, layer in enumerate(reps.layers):
        model, acc, loss = _reference(reps, result, layer)
        np.testing.assert_allclose(result.coef[i].numpy(), model.coef_, atol=1e-5)
        assert float(result.accuracy[i]) == acc
        assert float(result.loss[i, 0]) == pytest.approx(loss, rel=1e-8)


def test_other_C_matches_sklearn():
    reps = planted_representations(n=300, d_model=16, layers=2, signal=(1,), seed=2)
    result = train_probes(
        reps, C=0.01, control=False, dtype=torch.float64, tol=1e-9, progress=False
    )
    for i, layer in enumerate(reps.layers):
        model, acc, _ = _reference(reps, result, layer, C=0.01)
        np.testing.assert_allclose(result.coef[i].numpy(), model.coef_, atol=1e-6)
        assert float(result.accuracy[i]) == acc


def test_cross_validated_C_is_as_good_as_sklearns_choice():
    reps = planted_representations(n=400, d_model=20, layers=3, signal=(1,), strength=0.6, seed=4)
    Cs = [1e-3, 1e-2, 1e-1, 1.0, 10.0]
    result = train_probes(
        reps, cv=4, Cs=Cs, control=False, dtype=torch.float64, tol=1e-8, progress=False
    )
    y = np.asarray(reps.labels["label"])
    tr = result.train_index.numpy()
    folds = _folds(torch.as_tensor(y[tr]), 4, 0).numpy()
    splits = [(np.nonzero(folds != f)[0], np.nonzero(folds == f)[0]) for f in range(4)]
    for i, layer in enumerate(reps.layers):
        x = reps.vectors(layer).double().numpy()[tr]
        x = StandardScaler().fit_transform(x)
        ref = LogisticRegressionCV(Cs=Cs, cv=splits, tol=1e-10, max_iter=20000).fit(x, y[tr])
        mean_scores = next(iter(ref.scores_.values())).mean(0)  # [C]
        chosen = Cs.index(float(result.C[i]))
        assert mean_scores[chosen] >= mean_scores.max() - 1e-9, (layer, mean_scores, chosen)
