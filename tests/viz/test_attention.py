"""attention_view: the chosen heads' real patterns, idiom tokens marked, offline HTML."""

from __future__ import annotations

import json

import pytest
import torch

from idiomlens.data import IdiomExample, align
from idiomlens.models import tiny_model
from idiomlens.scoring import score_heads
from idiomlens.viz.attention import attention_view, head_patterns

EXAMPLE = IdiomExample("beans", "He spilled the beans again.", (3, 20))


def test_patterns_are_the_models_patterns():
    model = tiny_model(n_layers=2, n_heads=4, seed=3)
    [aligned] = align([EXAMPLE], model)
    _, cache = model.run_with_cache(torch.tensor([aligned.tokens]))
    got = head_patterns(model, aligned.tokens, [(1, 2), (0, 3)])
    torch.testing.assert_close(got[0], cache["pattern", 1][0, 2])
    torch.testing.assert_close(got[1], cache["pattern", 0][0, 3])


def test_view_marks_idiom_tokens_and_works_offline(tmp_path):
    model = tiny_model(n_layers=2, n_heads=4, seed=3)
    top = score_heads(model, [EXAMPLE], progress=False).top(2)
    view = attention_view(model, EXAMPLE, top)  # HeadScores.top rows are accepted
    [aligned] = align([EXAMPLE], model)
    s, e = aligned.span
    marked = [i for i, t in enumerate(view.tokens) if t.startswith("⟦") and t.endswith("⟧")]
    assert marked == list(range(s, e + 1))
    assert view.head_names == tuple(f"L{layer}H{head}" for layer, head, _ in top)
    assert "unpkg.com" not in view.html and "CircuitsVis.render(" in view.html
    assert json.dumps(list(view.head_names))[1:-1] in view.html
    page = view.save(tmp_path / "view.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and view.html in page


def test_bad_heads():
    model = tiny_model(n_layers=2, n_heads=4)
    with pytest.raises(ValueError, match="L2H0 is not in this model"):
        attention_view(model, EXAMPLE, [(2, 0)])
    with pytest.raises(ValueError, match="no heads"):
        attention_view(model, EXAMPLE, [])
