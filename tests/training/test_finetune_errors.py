"""Bad input: one clear error each, and nothing created or overwritten."""

from __future__ import annotations

import json

import pytest

from idiomlens.cli import main
from idiomlens.training.finetune import RunFolderError, finetune

from .conftest import RUN_DEFAULTS, folder_digest


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_lm_data_without_text_names_file_and_line(base_dir, tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", [{"text": "Break a leg!"}, {"sentence": "no text here"}])
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"d\.jsonl:2 lacks field\(s\) \['text'\]"):
        finetune(base_dir("gpt2"), data, method="lora", out=out, **RUN_DEFAULTS)
    assert not out.exists()


def test_completion_data_without_completion_names_the_record(base_dir, tmp_path):
    data = _jsonl(tmp_path / "qa.jsonl", [{"prompt": "Q: spill the beans? A:"}])
    with pytest.raises(ValueError, match=r"qa\.jsonl:1 lacks field\(s\) \['completion'\]"):
        finetune(base_dir("gpt2"), data, method="lora", objective="completion",
                 out=tmp_path / "out", **RUN_DEFAULTS)  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_unknown_method(base_dir, corpus, tmp_path):
    with pytest.raises(
        ValueError, match="unknown method 'prefix'; choose one of bitfit, full, ia3, lora"
    ):
        finetune(base_dir("gpt2"), corpus, method="prefix", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["missing", "hub-name", "adapter"])
def test_source_that_is_not_a_local_checkpoint(run, corpus, tmp_path, kind):
    source = {
        "missing": str(tmp_path / "nowhere"),
        "hub-name": "gpt2",
        "adapter": str(run("lora").final),  # an adapter folder has no config.json
    }[kind]
    with pytest.raises(ValueError, match="is not a local Hugging Face checkpoint folder"):
        finetune(source, corpus, method="lora", out=tmp_path / "out", **RUN_DEFAULTS)
    assert not (tmp_path / "out").exists()


def test_out_folder_holding_a_different_run_is_left_alone(run, base_dir, corpus):
    result = run("lora")
    before = folder_digest(result.out)
    with pytest.raises(RunFolderError, match=r"holds a different fine-tuning run.*learning_rate"):
        finetune(
            base_dir("gpt2"), corpus, method="lora", out=result.out, **{**RUN_DEFAULTS, "lr": 0.5}
        )
    with pytest.raises(RunFolderError, match="holds a different fine-tuning run.*method"):
        finetune(base_dir("gpt2"), corpus, method="ia3", out=result.out, **RUN_DEFAULTS)
    with pytest.raises(RunFolderError, match="holds a different fine-tuning run.*data_sha256"):
        finetune(base_dir("gpt2"), corpus[:8], method="lora", out=result.out, **RUN_DEFAULTS)
    assert folder_digest(result.out) == before


def test_out_folder_with_other_files_is_left_alone(base_dir, corpus, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="not empty and holds no fine-tuning run"):
        finetune(base_dir("gpt2"), corpus, method="lora", out=out, **RUN_DEFAULTS)
    assert folder_digest(out) == {"notes.txt": folder_digest(out)["notes.txt"]}
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_cli_reports_bad_input_in_one_line(base_dir, tmp_path, capsys):
    data = _jsonl(tmp_path / "d.jsonl", [{"sentence": "no text"}])
    argv = ["finetune", "--model", str(base_dir("gpt2")), "--data", str(data),
            "--method", "lora", "--out", str(tmp_path / "out"), "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and err[0].startswith("idiomlens: error: data ") and "lacks field" in err[0]
    )
    assert main([*argv[:2], str(tmp_path / "nowhere"), *argv[3:]]) == 2
    assert "not a local Hugging Face checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: unknown method choice
        main([*argv[:6], "prefix", *argv[7:]])
    assert "invalid choice: 'prefix'" in capsys.readouterr().err


def test_bitfit_on_a_model_without_biases_creates_nothing(base_dir, corpus, tmp_path):
    with pytest.raises(ValueError, match="bitfit: the llama model has no bias parameters"):
        finetune(
            base_dir("llama-gqa"), corpus, method="bitfit", out=tmp_path / "out", **RUN_DEFAULTS
        )
    assert not (tmp_path / "out").exists()
