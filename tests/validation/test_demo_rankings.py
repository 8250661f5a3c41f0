"""On the shipped demo model, which rankings find the causal heads (a property of its weights)."""

from __future__ import annotations

import pytest

import idiomlens
from idiomlens.data import demo_corpus
from idiomlens.scoring import detect_heads, score_heads
from idiomlens.validation import as_ranking, compare_rankings
from idiomlens.viz.validation import validation_sentence


@pytest.fixture(scope="module")
def comparison():
    model = idiomlens.load_model("idiomlens-demo")
    fig = demo_corpus("figurative")
    scores = score_heads(model, fig, progress=False)
    det = detect_heads(
        model, fig, "idiom_to_idiom", rows="marked", exclude_bos=True, exclude_current_token=True
    )
    rankings = {f"score ({c})": as_ranking(scores, combine=c) for c in ("sigmoid_sum", "zscore")}
    rankings["idiom_to_idiom"] = det
    return compare_rankings(model, fig, rankings, k=2, controls=100, progress=False)


def test_detection_passes_and_the_combined_score_does_not(comparison):
    table = comparison.to_dataframe().set_index("ranking")
    assert comparison["idiom_to_idiom"].top_heads == [(0, 0), (0, 1)]
    assert bool(table.loc["idiom_to_idiom", "passed"])
    assert table.loc["idiom_to_idiom", "ci_low"] > table.loc["idiom_to_idiom", "control_max"]
    assert not table.loc["score (sigmoid_sum)", "passed"]
    assert table.loc["score (sigmoid_sum)", "spearman"] < 0
    text = validation_sentence(comparison)
    assert text.startswith("Rankings that pass validation (p < 0.05): idiom_to_idiom.")
    assert "Caveat: this model has only 15 possible control sets" in text
