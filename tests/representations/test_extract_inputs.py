"""Inputs beyond idiom corpora (labelled texts, few-shot prompts) and bad-input errors."""

from __future__ import annotations

import json

import pytest
import torch

from idiomlens.data import (
    IdiomCorpus,
    IdiomExample,
    TextCorpus,
    TextExample,
    few_shot_prompts,
    load_texts,
)
from idiomlens.data.fewshot import HEADER
from idiomlens.representations import extract

ROWS = [
    {"id": "de-1", "text": "Der Hund schläft.", "language": "de", "n": 1},
    {"id": "en-1", "text": "The dog sleeps.", "language": "en", "n": 2},
    {"id": "en-2", "text": "A cat sits on the mat.", "language": "en", "n": 3},
]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_texts_from_jsonl_csv_and_a_saved_dataset(tmp_path):
    from datasets import Dataset

    jsonl = load_texts(_write_jsonl(tmp_path / "t.jsonl", ROWS))
    csv_path = tmp_path / "t.csv"
    csv_path.write_text(
        "id,text,language\n" + "".join(f"{r['id']},{r['text']},{r['language']}\n" for r in ROWS)
    )
    from_csv = load_texts(csv_path)
    Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    from_ds = load_texts(tmp_path / "ds", label_fields=["language"])
    for c in (jsonl, from_csv, from_ds):
        assert c.ids == ("de-1", "en-1", "en-2")
        assert [ex.labels["language"] for ex in c] == ["de", "en", "en"]
    assert jsonl[0].labels == {"language": "de", "n": 1}
    assert from_ds[0].labels == {"language": "de"}


def test_text_reader_errors_name_the_record(tmp_path):
    with pytest.raises(ValueError, match=r"t.jsonl:2: no 'text' field"):
        load_texts(_write_jsonl(tmp_path / "t.jsonl", [ROWS[0], {"id": "x"}]))
    with pytest.raises(ValueError, match="duplicate text id 'de-1'"):
        load_texts(_write_jsonl(tmp_path / "d.jsonl", [ROWS[0], ROWS[0]]))
    with pytest.raises(
        ValueError, match=r"l.jsonl:1: text 'de-1' lacks label field\(s\) \['topic'\]"
    ):
        load_texts(_write_jsonl(tmp_path / "l.jsonl", ROWS), label_fields=["topic"])
    with pytest.raises(ValueError, match=r"e.jsonl:1: text 'a': the text is empty"):
        load_texts(_write_jsonl(tmp_path / "e.jsonl", [{"id": "a", "text": " "}]))
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_texts(tmp_path / "missing.jsonl")


def test_extract_on_texts_carries_their_labels(model, tmp_path):
    texts = load_texts(_write_jsonl(tmp_path / "t.jsonl", ROWS))
    reps = extract(model, texts, site="resid_pre", pool="mean", progress=False)
    assert reps.ids == texts.ids and reps.labels == {"language": ("de", "en", "en"), "n": (1, 2, 3)}
    assert reps.meta["corpus_kind"] == "text"
    # the mean pool of a text is over every token after BOS, as for an idiom example
    toks = reps.vectors(0)
    assert toks.shape == (3, model.cfg.d_model)
    for pool in ("idiom", "idiom_last", "literal"):
        with pytest.raises(
            ValueError, match=f"pool '{pool}' needs marked idiom spans, but 't' is a text corpus"
        ):
            extract(model, texts, pool=pool, progress=False)


def test_idiom_meta_fields_travel_as_labels(model):
    corpus = IdiomCorpus([
        IdiomExample("a", "He spilled the beans.", (3, 20), "literal", meta={"idiom": "spill the beans", "src": 1}),
        IdiomExample("b", "Break a leg!", (0, 11), meta={"idiom": "break a leg", "spans": [1, 2]}),
    ])  # fmt: skip
    reps = extract(model, corpus, layers=[0], progress=False)
    assert reps.labels == {"label": ("literal", "figurative"), "idiom": ("spill the beans", "break a leg"),
                           "src": (1, None)}  # fmt: skip


def _mc(subject, i, answer=0):
    return {"question": f"{subject} q{i}?", "choices": [f"a{i}", f"b{i}", f"c{i}", f"d{i}"],
            "answer": answer, "subject": subject}  # fmt: skip


def test_few_shot_prompt_format():
    dev = [_mc("high_school_biology", i, answer=i) for i in range(2)]
    test = [_mc("high_school_biology", 9, answer="D")]
    [prompt] = few_shot_prompts(test, dev, k=2, seed=0)
    shots = [d for d in dev]
    import random

    order = list(range(2))
    random.Random("0:high_school_biology").shuffle(order)
    body = "".join(
        f"{shots[j]['question']}\nA. a{j}\nB. b{j}\nC. c{j}\nD. d{j}\nAnswer: {'AB'[j]}\n\n"
        for j in order
    )
    want = ("The following are multiple choice questions (with answers) about high school biology.\n\n"
            + body + "high_school_biology q9?\nA. a9\nB. b9\nC. c9\nD. d9\nAnswer:")  # fmt: skip
    assert prompt.text == want
    assert prompt.labels == {"subject": "high_school_biology", "answer": "D"}
    assert prompt.id == "high_school_biology-00000"


def test_few_shot_shots_come_from_the_subject_in_a_seeded_order():
    dev = [_mc(s, i) for s in ("anatomy", "law") for i in range(5)]
    test = [_mc("anatomy", 10), _mc("law", 11), {**_mc("anatomy", 12), "id": "mine"}]
    a = few_shot_prompts(test, dev, k=3, seed=1)
    assert a.ids == ("anatomy-00000", "law-00000", "mine")
    assert [p.text for p in a] == [p.text for p in few_shot_prompts(test, dev, k=3, seed=1)]
    assert "law q" not in a[0].text and a[0].text.count("Answer:") == 4
    # the same shots for every question of a subject
    assert a[0].text.split("anatomy q10?")[0] == a[2].text.split("anatomy q12?")[0]
    orders = {
        tuple(few_shot_prompts(test[:1], dev, k=5, seed=s)[0].text.split("?")[1:6])
        for s in range(6)
    }
    assert len(orders) > 1  # the seed changes the order
    zero = few_shot_prompts(test[:1], None, k=0)
    assert (
        zero[0].text
        == HEADER.format(subject="anatomy")
        + "anatomy q10?\nA. a10\nB. b10\nC. c10\nD. d10\nAnswer:"
    )


def test_few_shot_errors():
    with pytest.raises(ValueError, match="subject 'law': 0 dev record"):
        few_shot_prompts([_mc("law", 0)], [_mc("anatomy", 1)], k=1)
    with pytest.raises(ValueError, match=r"test record 0: missing field\(s\) \['subject'\]"):
        few_shot_prompts([{"question": "q", "choices": ["a", "b"], "answer": 0}], k=0)
    with pytest.raises(ValueError, match="answer 'E' is not one of ABCD"):
        few_shot_prompts([{**_mc("law", 0), "answer": "E"}], k=0)


def test_few_shot_prompts_extract_at_the_last_token():
    from idiomlens.engine import prepare
    from idiomlens.models import tiny_model

    model = tiny_model(n_ctx=512)
    dev = [_mc("anatomy", i) for i in range(2)]
    prompts = few_shot_prompts([_mc("anatomy", 5, answer=2), _mc("anatomy", 6, answer=1)], dev, k=2)
    reps = extract(model, prompts, site="norm", layers=[2], pool="last", progress=False)
    assert reps.labels == {"subject": ("anatomy", "anatomy"), "answer": ("C", "B")}
    [al, _] = prepare(model, [p.as_idiom_example() for p in prompts])
    assert al.text[al.offsets[-1][0] :].endswith(":")  # the row is the final "Answer:" token


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"site": "resid"}, "unknown site 'resid'; sites: resid_pre, resid_mid"),
        ({"pool": "max"}, "unknown pool 'max'; pools: last, idiom_last"),
        ({"layers": [5]}, r"site 'resid_post' has layers 0..1 in this model, got \[5\]"),
        ({"site": "norm", "layers": [-1]}, r"site 'norm' has layers 0..2"),
        (
            {"pool": "last", "average_duplicates": True},
            "average_duplicates=True needs pool='tokens'",
        ),
        ({"dtype": torch.int8}, "storage dtype must be float32, bfloat16 or float16"),
    ],
)
def test_bad_requests_get_one_clear_error(model, corpus, kwargs, message):
    with pytest.raises(ValueError, match=message):
        extract(model, corpus, progress=False, **kwargs)


def test_an_empty_literal_set_names_the_example(model, corpus):
    whole = IdiomExample("all-idiom", "Break a leg", (0, 11))
    with pytest.raises(ValueError, match="example 'all-idiom': the literal set is empty"):
        extract(model, [*corpus, whole], pool="literal", progress=False)
    assert extract(model, [whole], pool="idiom", layers=[0], progress=False).ids == ("all-idiom",)


def test_other_input_errors(model):
    with pytest.raises(ValueError, match="non-empty corpus"):
        extract(model, [], progress=False)
    with pytest.raises(TypeError, match="IdiomExample, TextExample or AlignedExample"):
        extract(model, ["a text"], progress=False)
    with pytest.raises(ValueError, match="text 'x': the text is empty"):
        TextCorpus([TextExample("x", "")])
