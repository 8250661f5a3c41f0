"""``idiomlens extract`` end to end: a user's command, its result, its one-line errors."""

from __future__ import annotations

import json

import torch

from idiomlens.cli import main
from idiomlens.models import NO_PROCESSING, load_model, save_hooked, tiny_model
from idiomlens.representations import Representations, extract

from ..models.conftest import build_hf, save_checkpoint


def test_extract_command(tmp_path, corpus, capsys):
    """A HF checkpoint is read with raw weights by default, as the library call with NO_PROCESSING."""
    model_dir = save_checkpoint(build_hf("llama-gqa", seed=4), tmp_path / "model")
    path = corpus.to_jsonl(tmp_path / "c.jsonl")
    out = tmp_path / "out"
    argv = ["extract", "--model", str(model_dir), "--corpus", str(path), "--out", str(out),
            "--site", "norm", "--pool", "idiom", "--layers", "0", "2", "--dtype", "bfloat16",
            "--chunk-size", "4", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "Representations (norm/idiom, layers [0, 2], 10 rows)" in capsys.readouterr().out
    got = Representations.load(out)
    want = extract(load_model(model_dir, processing=NO_PROCESSING), corpus, site="norm", pool="idiom",
                   layers=[0, 2], dtype=torch.bfloat16, progress=False)  # fmt: skip
    assert got.ids == corpus.ids and torch.equal(got.vectors(2), want.vectors(2))
    assert main(argv) == 0  # served from the folder


def test_extract_command_on_texts_and_its_errors(tmp_path, capsys):
    model_dir = save_hooked(tiny_model(n_layers=1), tmp_path / "model")
    texts = tmp_path / "t.jsonl"
    texts.write_text(
        "".join(
            json.dumps({"text": t, "lang": g}) + "\n"
            for t, g in [("Hallo Welt", "de"), ("Hi there", "en")]
        )
    )
    base = [
        "extract",
        "--model",
        str(model_dir),
        "--texts",
        str(texts),
        "--out",
        str(tmp_path / "o"),
        "--no-progress",
    ]
    assert main([*base, "--pool", "mean"]) == 0
    assert Representations.load(tmp_path / "o").labels == {"lang": ("de", "en")}
    capsys.readouterr()
    assert main([*base, "--pool", "idiom"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("idiomlens: error: ")
        and "needs marked idiom spans" in err
        and err.count("\n") == 1
    )
    assert (
        main([*base[:3], "--texts", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o")])
        == 2
    )
    assert "text corpus not found" in capsys.readouterr().err
