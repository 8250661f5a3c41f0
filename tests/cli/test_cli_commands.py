"""The CLI: commands write results loadable with the result classes; bad input -> one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from idiomlens.cli import build_parser, main
from idiomlens.data import IdiomCorpus
from idiomlens.models import load_model

from .conftest import write_records


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code, err, *needles):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("idiomlens: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for command in ("score", "detect", "dla", "ablate", "patch", "awareness", "demo"):
        assert command in text


def test_python_m_help_is_fast_and_does_not_import_torch():
    code = "import sys, idiomlens.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    done = subprocess.run(
        [sys.executable, "-m", "idiomlens", "score", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "--kind" in done.stdout


def test_score_writes_headscores_equal_to_the_api(capsys, tmp_path, saved_model, corpus_file):
    from idiomlens.scoring import HeadScores, score_heads

    code, out, _ = run_cli(
        capsys,
        "score",
        "--model",
        saved_model,
        "--corpus",
        corpus_file,
        "--kind",
        "literal",
        "--out",
        tmp_path,
        "--chunk-size",
        "5",
        "--no-progress",
    )
    assert code == 0 and "HeadScores (12 ids)" in out
    saved = HeadScores.load(tmp_path)
    corpus = IdiomCorpus.from_jsonl(corpus_file)
    direct = score_heads(load_model(saved_model), corpus, kind="literal", progress=False)
    assert saved.ids == corpus.ids and saved.kind == "literal"
    torch.testing.assert_close(saved.features, direct.features, rtol=0, atol=1e-5)
    spec = json.loads((tmp_path / "spec.json").read_text())
    assert spec["spec"]["analysis"] == "score" and spec["spec"]["params"] == {"kind": "literal"}


def test_dla_and_detect_commands(capsys, tmp_path, saved_model, corpus_file):
    from idiomlens.attribution import DLAResult
    from idiomlens.scoring import HeadDetection

    common = ["--model", saved_model, "--corpus", corpus_file, "--no-progress"]
    assert run_cli(capsys, "dla", *common, "--out", tmp_path / "dla")[0] == 0
    assert DLAResult.load(tmp_path / "dla").attributions.shape[0] == 12
    code, *_ = run_cli(
        capsys, "detect", *common, "--pattern", "idiom_to_idiom", "--out", tmp_path / "det"
    )
    assert code == 0
    assert HeadDetection.load(tmp_path / "det").ids == IdiomCorpus.from_jsonl(corpus_file).ids


def test_patch_command_other_idiom_pairs(capsys, tmp_path, saved_model, corpus_file):
    from idiomlens.interventions import PatchingResult

    code, *_ = run_cli(
        capsys,
        "patch",
        "--model",
        saved_model,
        "--corpus",
        corpus_file,
        "--mode",
        "other_idiom",
        "--out",
        tmp_path,
        "--no-progress",
    )
    assert code == 0
    result = PatchingResult.load(tmp_path)
    assert result.effects.shape == (2, 4) and len(result.ids) > 0


def test_missing_corpus(capsys, tmp_path, saved_model):
    code, _, err = run_cli(
        capsys,
        "score",
        "--model",
        saved_model,
        "--corpus",
        tmp_path / "nope.jsonl",
        "--out",
        tmp_path / "o",
    )
    assert_user_error(code, err, "nope.jsonl")


def test_unknown_model(capsys, tmp_path, corpus_file):
    code, _, err = run_cli(
        capsys,
        "score",
        "--model",
        tmp_path / "no-such-model",
        "--corpus",
        corpus_file,
        "--out",
        tmp_path / "o",
    )
    assert_user_error(code, err, "no-such-model")


def test_span_outside_text(capsys, tmp_path, saved_model):
    bad = write_records(
        tmp_path / "bad.jsonl",
        [
            {"id": "ok-1", "text": "He spilled the beans.", "span": [3, 20]},
            {"id": "bad-7", "text": "Short.", "span": [2, 40]},
        ],
    )
    code, _, err = run_cli(
        capsys, "score", "--model", saved_model, "--corpus", bad, "--out", tmp_path / "o"
    )
    assert_user_error(code, err, "bad-7", "bad.jsonl")


def test_sentence_longer_than_context(capsys, tmp_path, saved_model):
    text = "He spilled the beans " + "and then some more words " * 20
    long = write_records(
        tmp_path / "long.jsonl", [{"id": "too-long", "text": text, "span": [3, 20]}]
    )
    code, _, err = run_cli(
        capsys, "dla", "--model", saved_model, "--corpus", long, "--out", tmp_path / "o"
    )
    assert_user_error(code, err, "too-long", "context")
    assert not (tmp_path / "o" / "chunks").exists()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["score", "--batch-tokens", "0"], "positive integer"),
        (["score", "--kind", "phrase"], "invalid choice"),
        (["score", "--shard", "3/2"], "0 <= i < N"),
        (["ablate", "--heads", "one.two"], "LAYER.HEAD"),
    ],
)
def test_bad_option_values(capsys, tmp_path, argv, needle):
    base = ["--model", "m", "--corpus", "c.jsonl", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        main(argv + base)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_ablate_needs_a_condition(capsys, tmp_path, saved_model, corpus_file):
    code, _, err = run_cli(
        capsys, "ablate", "--model", saved_model, "--corpus", corpus_file, "--out", tmp_path
    )
    assert_user_error(code, err, "--heads")


def test_parser_builds_ablation_conditions():
    args = build_parser().parse_args(
        [
            "ablate",
            "--model",
            "m",
            "--corpus",
            "c",
            "--out",
            "o",
            "--heads",
            "1.3",
            "L0H2",
            "--group",
            "pair=0.1,1.1",
        ]
    )
    assert args.heads == [(1, 3), (0, 2)]
    assert args.group == [("pair", [(0, 1), (1, 1)])]


@pytest.mark.parametrize("kind", ["mean", "resample"])
def test_chunked_ablation_equals_one_call_on_the_whole_corpus(
    capsys, tmp_path, saved_model, corpus_file, kind
):
    from idiomlens.interventions import AblationResult, ablate_heads

    code, *_ = run_cli(
        capsys,
        "ablate",
        "--model",
        saved_model,
        "--corpus",
        corpus_file,
        "--heads",
        "0.1",
        "1.2",
        "--group",
        "both=0.1,1.2",
        "--kind",
        kind,
        "--positions",
        "idiom",
        "--seed",
        "3",
        "--chunk-size",
        "5",
        "--out",
        tmp_path,
        "--no-progress",
    )
    assert code == 0
    saved = AblationResult.load(tmp_path)
    corpus = IdiomCorpus.from_jsonl(corpus_file)
    direct = ablate_heads(
        load_model(saved_model),
        corpus,
        {"L0H1": [(0, 1)], "L1H2": [(1, 2)], "both": [(0, 1), (1, 2)]},
        kind=kind,
        positions="idiom",
        seed=3,
        progress=False,
    )
    assert saved.ids == corpus.ids and saved.conditions == ("L0H1", "L1H2", "both")
    torch.testing.assert_close(saved.logit_diff, direct.logit_diff, rtol=0, atol=1e-4)


def test_awareness_command(capsys, tmp_path, saved_model, corpus_file):
    from idiomlens.interventions import AwarenessResult, idiom_awareness

    code, *_ = run_cli(
        capsys,
        "awareness",
        "--model",
        saved_model,
        "--corpus",
        corpus_file,
        "--chunk-size",
        "5",
        "--out",
        tmp_path,
        "--no-progress",
    )
    assert code == 0
    saved = AwarenessResult.load(tmp_path)
    direct = idiom_awareness(
        load_model(saved_model), IdiomCorpus.from_jsonl(corpus_file), progress=False
    )
    assert saved.ids == direct.ids and saved.splits == direct.splits
    torch.testing.assert_close(saved.loss, direct.loss, rtol=0, atol=1e-5)
    assert torch.equal(saved.nwp_correct, direct.nwp_correct)


def test_demo_command_calls_run_demo(capsys, tmp_path, monkeypatch):
    import types

    calls = []
    fake = types.ModuleType("idiomlens.demo")
    fake.run_demo = lambda out, *, device=None, progress=True: (
        calls.append((out, device, progress)) or out / "report.html"
    )
    monkeypatch.setitem(sys.modules, "idiomlens.demo", fake)
    code, out, _ = run_cli(capsys, "demo", "--out", tmp_path, "--no-progress")
    assert code == 0 and calls == [(tmp_path, None, False)]
    assert str(tmp_path / "report.html") in out


def test_patch_without_pairs_is_a_user_error(capsys, tmp_path, saved_model, corpus_file):
    code, _, err = run_cli(
        capsys,
        "patch",
        "--model",
        saved_model,
        "--corpus",
        corpus_file,
        "--out",
        tmp_path,
        "--no-progress",
    )
    assert_user_error(code, err, "no paraphrase pair")
