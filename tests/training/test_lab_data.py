"""Text data sources (text file, IdiomCorpus JSONL, saved datasets.Dataset) and the
char / BPE / local HF tokenizers."""

from __future__ import annotations

import pytest
import torch

from idiomlens.data import IdiomCorpus, IdiomExample
from idiomlens.models import tiny_tokenizer
from idiomlens.models.tiny import TINY_TEXT
from idiomlens.training.lab import LabConfigError, perplexity, sample, train_lm, verify_stable_load

LINES = TINY_TEXT.splitlines()


def _cfg(data_path, **tokenizer):
    return {
        "model": {"n_layers": 1, "d_model": 16, "n_heads": 2, "n_ctx": 80},
        "data": {"path": str(data_path), "val_fraction": 0.25},
        "tokenizer": tokenizer,
        "train": {"steps": 6, "batch_size": 4, "eval_every": 3, "progress": False},
    }


def test_text_file_with_char_tokenizer(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(LINES) + "\n\n")
    run = train_lm(_cfg(path), out=tmp_path / "run")
    chars = set("".join(LINES))
    vocab = set(run.tokenizer.get_vocab()) - {"<|endoftext|>", "<unk>"}
    assert vocab <= chars and len(vocab) > 0.8 * len(chars)  # built from the training split
    assert (
        run.tokenizer.decode(run.tokenizer("spilled the beans")["input_ids"]) == "spilled the beans"
    )
    assert "val_accuracy" not in run.history  # only tasks define accuracy
    assert verify_stable_load(run.dir).ok
    ppl = perplexity(run.model, LINES[:2])
    assert ppl.n_tokens == sum(len(line) for line in LINES[:2])
    assert len(sample(run.model, "The", max_new_tokens=3, seed=0).completion[0]) == 3


def test_corpus_jsonl_and_bpe(tmp_path):
    path = tmp_path / "corpus.jsonl"
    IdiomCorpus([IdiomExample(f"e{i}", text, (0, 2)) for i, text in enumerate(LINES)]).to_jsonl(
        path
    )
    run = train_lm(_cfg(path, kind="bpe", vocab_size=300), out=tmp_path / "run")
    assert len(run.tokenizer) == 300 and run.model.cfg.d_vocab == 300


def test_saved_dataset_and_local_hf_tokenizer(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"sentence": LINES}).save_to_disk(str(tmp_path / "ds"))
    tiny_tokenizer().save_pretrained(tmp_path / "tok")
    cfg = _cfg(tmp_path / "ds", kind="hf", path=str(tmp_path / "tok"))
    with pytest.raises(LabConfigError, match="data.text_field: .* no column 'text'"):
        train_lm(cfg, out=tmp_path / "bad")
    cfg["data"]["text_field"] = "sentence"
    run = train_lm(cfg, out=tmp_path / "run")
    assert run.tokenizer.get_vocab() == tiny_tokenizer().get_vocab()
    assert run.history["tokens"].iloc[-1] > 0 and verify_stable_load(run.dir).ok


def test_long_samples_are_named_or_truncated(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("short\n" + "x" * 50 + "\n")
    cfg = _cfg(path)
    cfg["model"]["n_ctx"] = 20
    with pytest.raises(LabConfigError, match=f"{path}:2: 51 tokens > n_ctx=20"):
        train_lm(cfg, out=tmp_path / "a")
    cfg["data"]["truncate"] = True
    run = train_lm(cfg, out=tmp_path / "b")
    assert run.model.cfg.n_ctx == 20
    with torch.no_grad():
        assert run.model(torch.zeros(1, 20, dtype=torch.long)).shape[1] == 20
