"""validate_heads / compare_rankings: planted heads are found, random rankings are not,
controls avoid the top heads, numbers match direct ablations and do not depend on batching."""

from __future__ import annotations

import pytest
import torch

from idiomlens.attribution import direct_logit_attribution
from idiomlens.interventions import ablate_heads
from idiomlens.scoring import detect_heads, score_heads
from idiomlens.validation import (
    ComparisonResult,
    HeadRanking,
    ValidationResult,
    as_ranking,
    compare_rankings,
    draw_controls,
    validate_heads,
)

from .conftest import BOOST, N_HEADS, N_LAYERS, PLANTED

#: The planted heads raise the first target token's logit linearly (see conftest).
LOGIT = {"metric": "logit_diff", "progress": False}
ALL_HEADS = [(la, h) for la in range(N_LAYERS) for h in range(N_HEADS)]


def random_ranking(seed: int) -> list[tuple[int, int]]:
    perm = torch.randperm(len(ALL_HEADS), generator=torch.Generator().manual_seed(seed))
    return [ALL_HEADS[i] for i in perm.tolist()]


@pytest.fixture(scope="module")
def true_result(planted, corpus):
    return validate_heads(planted, corpus, PLANTED, k=2, controls=200, true_heads=PLANTED, **LOGIT)


def test_true_ranking_is_significant(true_result):
    res = true_result
    assert res.top_heads == PLANTED
    assert res.p_value < 0.01
    assert res.p_value == pytest.approx(1 / 201)
    assert res.effect == pytest.approx(2 * BOOST, abs=1e-4) and res.ci[0] > 0
    # no control contains a planted head, and only planted heads change anything
    assert torch.equal(res.control_effects, torch.zeros_like(res.control_effects))
    assert res.precision_at_k == 1.0
    assert res.spearman > 0.3
    assert res.passed()
    n_distinct = len({tuple(map(tuple, s)) for s in res.control_heads.tolist()})
    assert res.n_possible_controls == 91  # C(16 - 2, 2)
    assert res.distinct_p_value == pytest.approx(1 / (1 + n_distinct))
    effects = res.head_effects
    assert float(effects[0, 3]) == pytest.approx(float(effects[1, 5]))  # equal strength
    assert int((effects != 0).sum()) == 2


def test_random_rankings_false_positive_rate(planted, corpus):
    seeds = range(25)
    rankings = {f"seed {s}": random_ranking(100 + s) for s in seeds}
    comp = compare_rankings(
        planted, corpus, rankings, k=2, controls=100, true_heads=PLANTED, **LOGIT
    )
    p = torch.tensor([r.p_value for r in comp.results.values()])
    false_pos = [
        name
        for name, r in comp.results.items()
        if r.p_value < 0.05 and set(r.top_heads) != set(PLANTED)
    ]
    assert len(false_pos) == 0
    assert float((p < 0.05).float().mean()) <= 0.10
    # a top set with one planted head ties with the controls that hold the other one
    one = [r for r in comp.results.values() if len(set(r.top_heads) & set(PLANTED)) == 1]
    assert one and all(r.p_value > 0.05 for r in one)


def test_controls_never_include_a_top_head(true_result):
    for seed in range(20):
        top = random_ranking(seed)[:3]
        sets = draw_controls(top, N_LAYERS, N_HEADS, controls=50, seed=seed)
        assert sets.shape == (50, 3, 2)
        for s in sets.tolist():
            assert not set(map(tuple, s)) & set(top)
            assert len(set(map(tuple, s))) == 3  # a set has distinct heads
    res = true_result
    top = set(res.top_heads)
    assert all(not set(map(tuple, s)) & top for s in res.control_heads.tolist())
    other = draw_controls(PLANTED, N_LAYERS, N_HEADS, controls=200, seed=1)
    assert not torch.equal(other, res.control_heads)  # the seed matters
    assert torch.equal(
        draw_controls(PLANTED, N_LAYERS, N_HEADS, controls=200, seed=0), res.control_heads
    )


def test_values_equal_direct_ablations(model, corpus):
    """Deduplicated, stacked conditions map back to the right sets (random tiny model,
    where every head matters): compare with ablate_heads on each set alone."""
    small = corpus[:4]
    res = validate_heads(
        model, small, [(1, 2), (0, 1)], k=2, controls=6, seed=3, kind="mean", progress=False
    )
    conds = {"top": res.top_heads}
    conds.update({f"c{i}": [tuple(h) for h in s] for i, s in enumerate(res.control_heads.tolist())})
    ref = ablate_heads(model, small, conds, kind="mean", seed=3, progress=False)
    assert torch.allclose(res.topk_values, ref.logprob_diff[:, 0], atol=1e-5)
    assert torch.allclose(res.control_values, ref.logprob_diff[:, 1:], atol=1e-5)
    heads = [(la, h) for la in range(2) for h in range(4)]  # the 2 x 4 fixture model
    singles = ablate_heads(model, small, heads, kind="mean", seed=3, progress=False)
    assert torch.allclose(res.head_values.reshape(len(small), -1), singles.logprob_diff, atol=1e-5)
    # p-value and effect by their definitions
    effect = float(ref.logprob_diff[:, 0].double().mean())
    ctrl = ref.logprob_diff[:, 1:].double().mean(0)
    assert res.effect == pytest.approx(effect, abs=1e-6)
    assert res.p_value == pytest.approx((1 + int((ctrl >= effect - 1e-6).sum())) / 7)


@pytest.mark.parametrize("metric", ["logit_diff", "loss_diff", "accuracy_drop"])
def test_metrics(model, corpus, metric):
    small = corpus[:3]
    res = validate_heads(model, small, [(0, 0)], k=1, controls=3, metric=metric, progress=False)
    ref = ablate_heads(model, small, {"top": [(0, 0)]}, progress=False)
    expected = {
        "logit_diff": ref.logit_diff[:, 0],
        "loss_diff": ref.loss_diff[:, 0],
        "accuracy_drop": ref.clean_nwp_correct.float() - ref.nwp_correct[:, 0].float(),
    }[metric]
    assert torch.allclose(res.topk_values, expected.float(), atol=1e-5)


def test_identical_for_any_batch_size(planted, model, corpus):
    small = corpus[:6]
    for m, ranking in ((planted, random_ranking(7)), (model, [(0, 2), (1, 1)])):
        runs = [
            validate_heads(m, small, ranking, k=2, controls=12, batch_tokens=bt, progress=False)
            for bt in (None, 40, 211)
        ]
        first = runs[0]
        for other in runs[1:]:
            assert torch.allclose(first.topk_values, other.topk_values, atol=1e-5)
            assert torch.allclose(first.control_values, other.control_values, atol=1e-5)
            assert torch.allclose(first.head_values, other.head_values, atol=1e-5)
            assert first.p_value == other.p_value
            assert first.spearman == pytest.approx(other.spearman, abs=1e-9)
            assert first.ci == pytest.approx(other.ci, abs=1e-5)


def test_rankings_from_results(planted, corpus):
    scores = score_heads(planted, corpus, progress=False)
    r = as_ranking(scores)
    assert r.top(5) == [(la, h) for la, h, _ in scores.top(5)]
    assert r.scores[:5] == pytest.approx([v for _, _, v in scores.top(5)])
    det = detect_heads(planted, corpus, "previous_token")
    assert as_ranking(det).top(4) == [(la, h) for la, h, _ in det.top(4)]
    # only the planted heads write into the unembedding's target direction
    dla = direct_logit_attribution(planted, corpus, progress=False)
    ranked = as_ranking(dla, group="idiom")
    assert set(ranked.top(2)) == set(PLANTED) and ranked.name == "DLA (idiom)"
    res = validate_heads(planted, corpus, dla, k=2, controls=50, **LOGIT)
    assert res.p_value < 0.05 and res.spearman > 0.3
    # a partial explicit ranking: unranked heads tie at the bottom
    part = validate_heads(planted, corpus, PLANTED, k=1, controls=20, progress=False)
    table = part.to_dataframe()
    assert table["rank"].notna().sum() == 2 and table["in_top_k"].sum() == 1
    with_scores = as_ranking(scores, combine="zscore")
    assert with_scores.name == "idiom score (zscore)" and len(with_scores.heads) == 16


def test_compare_rankings_table_and_roundtrip(planted, corpus, tmp_path):
    rankings = {"planted": PLANTED, "random": random_ranking(3)}
    comp = compare_rankings(planted, corpus, rankings, k=2, controls=40, **LOGIT)
    table = comp.to_dataframe()
    assert list(table["ranking"]) == ["planted", "random"]
    assert bool(table.loc[0, "passed"]) and table.loc[0, "p_value"] < 0.05
    for col in ("effect", "ci_low", "ci_high", "control_mean", "p_value", "spearman"):
        assert col in table
    alone = validate_heads(planted, corpus, PLANTED, k=2, controls=40, **LOGIT)
    assert comp["planted"].p_value == alone.p_value
    assert torch.equal(comp["planted"].control_heads, alone.control_heads)
    loaded = ComparisonResult.load(comp.save(tmp_path / "comp"))
    assert loaded.names == comp.names
    assert loaded.to_dataframe().equals(table)
    one = ValidationResult.load(alone.save(tmp_path / "one"))
    assert one.summary() == alone.summary() and one.true_heads == alone.true_heads
    assert len(comp.plot().data) == 4
    fig = alone.plot()
    assert {t.type for t in fig.data} == {"histogram", "scatter"}
    joined = ValidationResult.concat([alone, alone])
    assert len(joined) == 2 * len(alone)


def test_bad_input_is_named(planted, model, corpus):
    with pytest.raises(ValueError, match="k=3"):
        validate_heads(model, corpus, [(0, 0), (1, 1)], k=3, controls=2, progress=False)
    with pytest.raises(ValueError, match="out of range"):
        validate_heads(model, corpus, [(5, 0)], k=1, controls=2, progress=False)
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        validate_heads(model, corpus, [(0, 0)], k=1, metric="nope", progress=False)
    with pytest.raises(ValueError, match="combine"):
        validate_heads(model, corpus, [(0, 0)], k=1, combine="zscore", progress=False)
    with pytest.raises(ValueError, match="smaller k"):
        validate_heads(model, corpus, [(0, h) for h in range(4)] + [(1, 0)], k=5, progress=False)
    with pytest.raises(ValueError, match="repeated"):
        HeadRanking(heads=((0, 0), (0, 0)), scores=(1.0, 0.5))
    with pytest.raises(ValueError, match="non-increasing"):
        HeadRanking(heads=((0, 0), (0, 1)), scores=(0.1, 0.5))
    with pytest.raises(TypeError, match="a ranking is"):
        as_ranking("L0H0")
