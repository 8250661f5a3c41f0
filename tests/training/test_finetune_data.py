"""Every accepted data form reads to the same records; exports are wired."""

from __future__ import annotations

import json

import pytest
from datasets import Dataset

import idiomlens
from idiomlens.training.finetune import finetune
from idiomlens.training.finetune.data import data_hash, read_records

TEXTS = ["He spilled the beans.", "Break a leg!", "It was a piece of cake."]


def test_every_lm_data_form_gives_the_same_records(tmp_path):
    (tmp_path / "t.txt").write_text("\n".join(TEXTS[:2]) + "\n\n" + TEXTS[2] + "\n")
    (tmp_path / "t.jsonl").write_text(
        "".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(TEXTS))
    )
    Dataset.from_list([{"text": t} for t in TEXTS]).save_to_disk(str(tmp_path / "saved"))
    corpus = idiomlens.IdiomCorpus(
        [idiomlens.IdiomExample(f"e{i}", t, (0, 2)) for i, t in enumerate(TEXTS)]
    )
    forms = [
        tmp_path / "t.txt",
        tmp_path / "t.jsonl",
        tmp_path / "saved",
        Dataset.from_list([{"text": t} for t in TEXTS]),
        corpus,
        TEXTS,
    ]
    expected = [{"text": t} for t in TEXTS]
    for form in forms:
        assert read_records(form, fields=("text",)) == expected, form
    assert len({data_hash(read_records(f, fields=("text",))) for f in forms}) == 1


def test_completion_records_and_bad_rows(tmp_path):
    rows = [{"prompt": "Q:", "completion": " A."}, {"prompt": "Q2:", "completion": 3}]
    with pytest.raises(ValueError, match=r"record 1: field\(s\) \['completion'\] must be strings"):
        read_records(rows, fields=("prompt", "completion"))
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{not json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: not valid JSON"):
        read_records(tmp_path / "bad.jsonl", fields=("text",))
    with pytest.raises(FileNotFoundError, match="data not found"):
        read_records(tmp_path / "missing.jsonl", fields=("text",))


def test_public_names_are_exported():
    assert idiomlens.finetune is finetune
    assert idiomlens.FinetuneResult.__name__ == "FinetuneResult"
    assert callable(idiomlens.compare_checkpoints)
