"""The "validate" analysis through the run engine (cached, resumable) and the CLI."""

from __future__ import annotations

import json

import pytest
import torch

import idiomlens.validation.runner as runner
from idiomlens.cli import main
from idiomlens.data import IdiomCorpus
from idiomlens.models import save_hooked
from idiomlens.runs import run_analysis
from idiomlens.validation import ValidationResult, as_ranking, validate_heads

from .conftest import PLANTED


@pytest.fixture
def counted(monkeypatch):
    """Count the ablation runs the validation does (one per chunk)."""
    calls = []
    real = runner.ablate_heads

    def counting(*args, **kwargs):
        calls.append(len(args[1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "ablate_heads", counting)
    return calls


def _params(**extra):
    return {"ranking": as_ranking(PLANTED), "k": 2, "controls": 30, "metric": "logit_diff", **extra}


def test_run_analysis_caches_and_equals_the_direct_call(planted, corpus, tmp_path, counted):
    out = tmp_path / "v"
    res = run_analysis(
        "validate", planted, corpus, out=out, params=_params(), chunk_size=4, progress=False
    )
    assert isinstance(res, ValidationResult) and counted == [4, 4, 2]
    direct = validate_heads(
        planted, corpus, PLANTED, k=2, controls=30, metric="logit_diff", progress=False
    )
    assert res.ids == direct.ids
    assert torch.allclose(res.topk_values, direct.topk_values, atol=1e-5)
    assert res.p_value == direct.p_value and res.ci == pytest.approx(direct.ci, abs=1e-6)
    assert res.spearman == pytest.approx(direct.spearman)
    assert torch.equal(res.control_heads, direct.control_heads)
    counted.clear()
    again = run_analysis(
        "validate", planted, corpus, out=out, params=_params(), chunk_size=4, progress=False
    )
    assert counted == []  # reused, nothing recomputed
    assert again.summary() == res.summary()
    assert ValidationResult.load(out).summary() == res.summary()
    other = run_analysis(
        "validate", planted, corpus, out=out, params=_params(seed=1), chunk_size=4, progress=False
    )
    assert counted == [4, 4, 2] and not torch.equal(other.control_heads, res.control_heads)


def test_run_resumes_after_an_interruption(planted, corpus, tmp_path, counted):
    out = tmp_path / "v"
    # a shard job computes chunks 0 and 2 only, like a run killed half-way
    assert (
        run_analysis(
            "validate",
            planted,
            corpus,
            out=out,
            params=_params(),
            chunk_size=4,
            shard=(0, 2),
            progress=False,
        )
        is None
    )
    assert counted == [4, 2]
    res = run_analysis(
        "validate", planted, corpus, out=out, params=_params(), chunk_size=4, progress=False
    )
    assert counted == [4, 2, 4]  # only the missing chunk
    whole = run_analysis(
        "validate",
        planted,
        corpus,
        out=tmp_path / "w",
        params=_params(),
        chunk_size=100,
        progress=False,
    )
    assert torch.allclose(res.topk_values, whole.topk_values, atol=1e-5)
    assert res.p_value == whole.p_value


def test_cli_validate(planted, corpus, tmp_path, capsys):
    model_dir = save_hooked(planted, tmp_path / "model")
    corpus_file = IdiomCorpus(list(corpus)).to_jsonl(tmp_path / "c.jsonl")
    base = ["validate", "--model", model_dir, "--corpus", corpus_file, "--no-progress"]
    out = tmp_path / "v"
    argv = [
        *base,
        "--heads",
        "0.3",
        "L1H5",
        "--k",
        "2",
        "--controls",
        "20",
        "--metric",
        "logit_diff",
        "--true-heads",
        "0.3",
        "1.5",
        "--out",
        out,
    ]
    assert main([str(a) for a in argv]) == 0
    text = capsys.readouterr().out
    assert "PASSES" in text and "precision@k 1.00" in text
    res = ValidationResult.load(out)
    assert res.top_heads == PLANTED and res.p_value < 0.05
    spec = json.loads((out / "spec.json").read_text())
    assert "validate" in json.dumps(spec)
    # a saved DLAResult as the ranking
    score_dir = tmp_path / "dla"
    assert (
        main(
            [
                str(a)
                for a in [
                    "dla",
                    "--model",
                    model_dir,
                    "--corpus",
                    corpus_file,
                    "--out",
                    score_dir,
                    "--no-progress",
                ]
            ]
        )
        == 0
    )
    capsys.readouterr()
    argv = [
        *base,
        "--ranking",
        score_dir,
        "--group",
        "idiom",
        "--k",
        "2",
        "--controls",
        "20",
        "--metric",
        "logit_diff",
        "--out",
        tmp_path / "v2",
    ]
    assert main([str(a) for a in argv]) == 0
    assert "DLA (idiom)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--heads", "0.3", "--metric", "bogus"], "--metric: unknown value 'bogus'"),
        (["--heads", "0.3", "--k", "9"], "only 16 heads, too few"),
        (["--heads", "0.3", "--k", "2"], "the ranking has only 1 heads"),
        (["--heads", "9.0", "--k", "1"], "out of range"),
        (["--ranking", "nowhere"], "no saved result"),
        (["--heads", "0.3", "--combine", "zscore"], "--combine / --group apply"),
    ],
)
def test_cli_bad_input_is_one_line(planted, corpus, tmp_path, capsys, extra, needle):
    model_dir = save_hooked(planted, tmp_path / "model")
    corpus_file = IdiomCorpus(list(corpus)).to_jsonl(tmp_path / "c.jsonl")
    argv = [
        "validate",
        "--model",
        model_dir,
        "--corpus",
        corpus_file,
        "--out",
        tmp_path / "o",
        "--no-progress",
        *extra,
    ]
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("idiomlens: error: ")
    assert needle in err[0]
