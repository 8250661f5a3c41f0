"""The shipped demo model (a real property of its weights) and the end-to-end demo."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest
import torch

import idiomlens
from idiomlens.data import demo_corpus
from idiomlens.demo import demo_conditions
from idiomlens.models.native import DEMO_MODEL_DIR

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_model():
    return idiomlens.load_model("idiomlens-demo")


def _greedy_last_word_accuracy(model, corpus) -> float:
    """Reference: decode greedily (argmax), token by token, from the text before the last
    idiom word and compare the decoded text with that word (leading space included).
    Prompts of equal token length are decoded together, so no padding is involved."""
    tok = model.tokenizer
    groups: dict[int, list[tuple[list[int], str]]] = defaultdict(list)
    for ex in corpus:
        cut = ex.text.rfind(" ", 0, ex.span[1])
        ids = [tok.bos_token_id, *tok(ex.text[:cut], add_special_tokens=False)["input_ids"]]
        groups[len(ids)].append((ids, ex.text[cut : ex.span[1]]))
    hits = 0
    for rows in groups.values():
        tokens = torch.tensor([ids for ids, _ in rows])
        n_new = max(len(tok(w, add_special_tokens=False)["input_ids"]) for _, w in rows)
        for _ in range(n_new):
            tokens = torch.cat([tokens, model(tokens)[:, -1].argmax(-1, keepdim=True)], dim=1)
        for (ids, word), row in zip(rows, tokens.tolist(), strict=True):
            n_word = len(tok(word, add_special_tokens=False)["input_ids"])
            hits += tok.decode(row[len(ids) : len(ids) + n_word]) == word
    return hits / len(corpus)


def test_demo_model_ships_small_and_reproducible(demo_model):
    weights = DEMO_MODEL_DIR / "model.safetensors"
    assert weights.stat().st_size <= 10 * 2**20
    trained = json.loads((DEMO_MODEL_DIR / "training.json").read_text())
    config = json.loads((ROOT / "idiomlens" / "training" / "demo_config.json").read_text())
    assert trained["config"] == config  # the committed config produced the weights
    assert demo_model.cfg.positional_embedding_type == "standard"
    assert demo_model.tokenizer.bos_token_id == 0 and demo_model.cfg.d_vocab == len(
        demo_model.tokenizer
    )


def test_demo_model_has_learned_idiom_continuations(demo_model):
    with torch.inference_mode():
        fig = _greedy_last_word_accuracy(demo_model, demo_corpus("figurative"))
        control = _greedy_last_word_accuracy(demo_model, demo_corpus("paraphrase"))
    assert fig > 0.8
    assert control < fig - 0.5  # the meanings, held out of training, are not predicted


def test_demo_conditions_groups_and_control():
    conds = demo_conditions([(0, 0), (0, 1)], [(1, 1), (1, 0)], 2, 4, seed=0)
    assert list(conds)[:8] == [f"L{layer}H{head}" for layer in range(2) for head in range(4)]
    control = conds["random control"]
    assert len(control) == 2 and not set(control) & {(0, 0), (0, 1), (1, 1), (1, 0)}
    assert (
        control
        == demo_conditions([(0, 0), (0, 1)], [(1, 1), (1, 0)], 2, 4, seed=0)["random control"]
    )


def test_run_demo_writes_results_and_offline_report(demo_out):
    out, report = demo_out
    assert report == out / "report.html"
    html = report.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc=", html)
    assert html.count("Plotly.newPlot(") >= 5 and html.count("window.PlotlyConfig") == 1
    fig_ids = demo_corpus("figurative").ids
    for name, cls in [
        ("idiom_scores", idiomlens.HeadScores),
        ("literal_scores", idiomlens.HeadScores),
        ("dla", idiomlens.DLAResult),
        ("ablation", idiomlens.AblationResult),
    ]:
        assert cls.load(out / name).ids == fig_ids, name
    assert idiomlens.HeadScores.load(out / "literal_scores").kind == "literal"


def test_demo_finds_idiom_heads_that_matter(demo_out):
    out, _ = demo_out
    summary = json.loads((out / "summary.json").read_text())
    groups = summary["group_ablation"]
    assert summary["clean_accuracy"] > 0.8
    idiom, control = groups["idiom heads"], groups["random control"]
    assert idiom["logprob_diff"] > 10 * abs(control["logprob_diff"]) + 0.5
    assert idiom["accuracy"] < control["accuracy"] - 0.2
    heads = {tuple(h) for h in summary["idiom_heads"]}
    assert heads.isdisjoint(tuple(h) for h in summary["random_control_heads"])
    assert (
        summary["idiom_heads"]
        and f"L{summary['idiom_heads'][0][0]}H"
        in open(out / "report.html", encoding="utf-8").read()
    )
