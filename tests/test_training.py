"""The shipped demo corpus and the demo model's reproducible training pipeline."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from idiomlens.data import demo_corpus
from idiomlens.training.demo_data import build_demo_corpus, render, training_sentences
from idiomlens.training.idioms import IDIOMS
from idiomlens.training.small import TrainConfig, train

CONFIG = Path(__file__).resolve().parents[1] / "idiomlens" / "training" / "demo_config.json"


@pytest.fixture(scope="module")
def shipped():
    return demo_corpus()


def test_shipped_corpus_is_the_generated_one(shipped):
    built = build_demo_corpus()
    assert [ex.to_dict() for ex in shipped] == [ex.to_dict() for ex in built]


def test_corpus_size_splits_and_ids(shipped):
    assert 300 <= len(shipped) <= 500
    assert len({ex.meta["idiom"] for ex in shipped}) >= 25
    prefixes = {"figurative": "fig-", "paraphrase": "para-", "literal": "lit-"}
    for ex in shipped:
        split = ex.meta["split"]
        assert ex.id.startswith(prefixes[split]), ex.id
        assert ex.label == ("literal" if split == "literal" else "figurative"), ex.id
    for split in prefixes:
        assert len(demo_corpus(split)) == sum(ex.meta["split"] == split for ex in shipped)
    with pytest.raises(ValueError, match="split"):
        demo_corpus("nonsense")


def test_spans_cover_the_idiom_exactly(shipped):
    for ex in shipped:
        if ex.meta["split"] != "paraphrase":
            assert ex.text[ex.span[0] : ex.span[1]] == ex.meta["idiom"], ex.id


def test_every_paraphrase_replaces_its_figurative_idiom_by_the_meaning(shipped):
    paras = [ex for ex in shipped if ex.meta["split"] == "paraphrase"]
    assert len(paras) == len(demo_corpus("figurative"))
    for para in paras:
        fig = shipped[para.meta["pair"]]
        assert fig.id.removeprefix("fig-") == para.id.removeprefix("para-")
        (a, b), (c, d) = fig.span, para.span
        assert para.text[c:d] == fig.meta["meaning"], para.id
        assert para.text == fig.text[:a] + fig.meta["meaning"] + fig.text[b:], para.id
        assert fig.meta["idiom"] not in para.text


def test_render_span_is_exact_and_capitalises():
    text, (a, b) = render("{S} said it was {I}.", "my uncle", "", "a piece of cake")
    assert text == "My uncle said it was a piece of cake." and text[a:b] == "a piece of cake"
    with pytest.raises(ValueError, match="non-initial"):
        type(IDIOMS[0])("x y", "z", ("{I} starts",))


def test_training_text_is_disjoint_from_the_corpus_and_deterministic(shipped):
    sents = training_sentences(3000, seed=0)
    assert sents == training_sentences(3000, seed=0)
    assert sents != training_sentences(3000, seed=1)
    assert len(set(sents)) == len(sents)
    assert not set(sents) & {ex.text for ex in shipped}
    meanings = {idiom.meaning for idiom in IDIOMS if len(idiom.meaning.split()) > 2}
    assert not any(m in s for s in sents for m in meanings)  # paraphrases are held out


def test_config_file_is_valid_and_validation_names_the_problem(tmp_path):
    cfg = TrainConfig.from_json(CONFIG)
    assert cfg.n_ctx >= 64 and cfg.n_layers >= 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"n_layers": 2, "colour": "red"}))
    with pytest.raises(ValueError, match="colour"):
        TrainConfig.from_json(bad)
    with pytest.raises(ValueError, match="warmup"):
        TrainConfig(steps=10, warmup=10)


def test_training_reproduces_weights_bit_for_bit():
    cfg = TrainConfig(
        n_layers=1, n_heads=2, d_model=16, d_head=8, d_mlp=32, vocab_size=300,
        n_sentences=200, steps=4, batch_size=8, warmup=1, seed=3,
    )  # fmt: skip
    threads = torch.get_num_threads()
    (m1, metrics1), (m2, metrics2) = train(cfg), train(cfg)
    assert torch.get_num_threads() == threads  # the scoped settings are restored
    assert not torch.are_deterministic_algorithms_enabled()
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert metrics1["final_train_loss"] == metrics2["final_train_loss"]
    m3, _ = train(TrainConfig(**{**asdict(cfg), "seed": 4}))
    assert not torch.equal(m3.state_dict()["embed.W_E"], s1["embed.W_E"])
