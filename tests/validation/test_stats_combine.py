"""Statistics and feature combinations against scipy references and their definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as sps

from idiomlens.scoring import HeadScores
from idiomlens.scoring.combine import COMBINE, average_ranks, combined_head_scores
from idiomlens.validation.stats import bootstrap_ci, empirical_p_value, precision_at_k, spearman


def _scores(seed: int, n: int = 7, layers: int = 3, heads: int = 4) -> HeadScores:
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, layers, heads, 5, generator=gen)
    feats[..., 4] = feats[..., 4] * 10  # one feature on a much larger scale
    return HeadScores(
        ids=tuple(f"e{i}" for i in range(n)), features=feats, scores=torch.sigmoid(feats.sum(-1))
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_ranks_and_spearman_match_scipy(seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 5, (30,), generator=gen).double()  # many ties
    y = torch.randn(30, generator=gen, dtype=torch.float64)
    assert np.allclose(average_ranks(x).numpy(), sps.rankdata(x.numpy()))
    assert spearman(x, y) == pytest.approx(sps.spearmanr(x.numpy(), y.numpy()).statistic, abs=1e-10)
    assert spearman(x, 2 * x + 1) == pytest.approx(1.0)
    assert np.isnan(spearman(x, torch.ones(30)))


def test_p_value_by_its_definition():
    gen = torch.Generator().manual_seed(0)
    ctrl = torch.randn(99, generator=gen)
    for effect in (-3.0, 0.0, 0.5, 1.0, 10.0):
        naive = (
            1 + sum(1 for c in ctrl.tolist() if c >= effect - 1e-6 * max(1, abs(effect)))
        ) / 100
        assert empirical_p_value(effect, ctrl) == pytest.approx(naive)
    assert empirical_p_value(10.0, ctrl) == pytest.approx(1 / 100)  # the +1 correction
    assert empirical_p_value(0.0, torch.zeros(5)) == 1.0  # ties count as at least as strong


def test_bootstrap_ci_properties():
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(200, generator=gen) + 3
    lo, hi = bootstrap_ci(v, seed=1)
    assert lo < float(v.mean()) < hi
    lo99, hi99 = bootstrap_ci(v, level=0.99, seed=1)
    assert lo99 <= lo and hi <= hi99
    se = float(v.std() / 200**0.5)
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.2)  # normal approximation
    assert bootstrap_ci(v, seed=1) == bootstrap_ci(v, seed=1)
    assert precision_at_k([(0, 0), (0, 1), (1, 1)], [(0, 1)]) == pytest.approx(1 / 3)


def test_sigmoid_sum_is_the_methods_score():
    s = _scores(0)
    assert torch.allclose(combined_head_scores(s), s.mean(), atol=1e-6)
    assert torch.allclose(combined_head_scores(s, combine="sigmoid_sum"), s.mean(), atol=1e-6)


def test_zscore_and_rank_match_scipy():
    s = _scores(1)
    means = s.features.mean(0).reshape(-1, 5).numpy()  # [head, feature]
    z = sps.zscore(means, axis=0, ddof=1).sum(1).reshape(3, 4)
    assert np.allclose(combined_head_scores(s, combine="zscore").numpy(), z, atol=1e-5)
    r = np.stack([sps.rankdata(means[:, f]) for f in range(5)], 1).mean(1).reshape(3, 4)
    assert np.allclose(combined_head_scores(s, combine="rank").numpy(), r, atol=1e-6)


def test_constant_feature_and_errors():
    s = _scores(2)
    s.features[..., 1] = 0.25  # constant across heads: contributes nothing
    before = s.features.clone()
    z = combined_head_scores(s, combine="zscore")
    rest = sps.zscore(s.features.mean(0).reshape(-1, 5).numpy()[:, [0, 2, 3, 4]], axis=0, ddof=1)
    assert np.allclose(z.flatten().numpy(), rest.sum(1), atol=1e-5)
    assert torch.equal(s.features, before)  # pure
    with pytest.raises(ValueError, match="unknown combine 'sum'"):
        combined_head_scores(s, combine="sum")
    assert set(COMBINE) == {"sigmoid_sum", "zscore", "rank"}
