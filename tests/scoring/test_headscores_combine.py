"""``HeadScores.mean`` / ``top`` with ``combine=``: the default is the METHODS.md score,
the calibrated ones are exactly :mod:`idiomlens.scoring.combine`'s functions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from idiomlens.scoring import HeadScores, score_heads
from idiomlens.scoring.combine import combined_head_scores
from idiomlens.scoring.result import top_heads


@pytest.fixture(scope="module")
def scores(model, edge_aligned) -> HeadScores:
    return score_heads(model, edge_aligned, kind="idiom", progress=False)


def test_default_is_unchanged(scores):
    # bitwise: the mean of the stored per-example scores, as before the keyword existed
    assert torch.equal(scores.mean(), scores.scores.mean(0))
    assert torch.equal(scores.mean(combine="sigmoid_sum"), scores.mean())
    assert torch.equal(scores.mean("max"), scores.features[..., 2].mean(0))
    assert scores.top(5) == top_heads(scores.scores.mean(0), 5, scores.layers)
    assert scores.top(5, combine="sigmoid_sum") == scores.top(5)


@pytest.mark.parametrize("combine", ["zscore", "rank"])
def test_calibrated_equal_the_combine_module(scores, combine):
    table = combined_head_scores(scores, combine=combine)
    assert torch.equal(scores.mean(combine=combine), table)
    ranked = scores.top(7, combine=combine)
    assert ranked == top_heads(table, 7, scores.layers)
    assert [r.value for r in ranked] == sorted((r.value for r in ranked), reverse=True)


def test_calibrated_against_independent_references(scores):
    means = scores.features.double().mean(0).reshape(-1, len(scores.feature_names)).numpy()
    std = means.std(0, ddof=1)
    z = np.where(std > 0, (means - means.mean(0)) / np.where(std > 0, std, 1), 0).sum(1)
    np.testing.assert_allclose(scores.mean(combine="zscore").reshape(-1).numpy(), z, atol=1e-5)
    ranks = np.stack([rankdata(means[:, j]) for j in range(means.shape[1])], 1).mean(1)
    np.testing.assert_allclose(scores.mean(combine="rank").reshape(-1).numpy(), ranks, atol=1e-5)
    # a calibrated ranking is not the default one on these scores (the test can fail)
    assert not torch.allclose(scores.mean(combine="zscore"), scores.mean())


def test_bad_combine_is_one_clear_error(scores):
    with pytest.raises(ValueError, match="unknown combine 'mode'"):
        scores.top(3, combine="mode")
    with pytest.raises(ValueError, match="feature='max'"):
        scores.mean("max", combine="rank")
