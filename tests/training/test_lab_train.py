"""train_lm end to end: learning, reproducibility, resuming, sweeps, saved folders."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import idiomlens
from idiomlens.training.lab import TrainedLM, train_lm, verify_stable_load
from idiomlens.training.lab.tasks import get_task

from .conftest import tiny_config


def _weights_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_copy_task_reaches_99_percent_held_out_accuracy(copy_run):
    final = copy_run.history.iloc[-1]
    assert final["val_accuracy"] >= 0.99, copy_run.history
    assert copy_run.history["val_accuracy"].iloc[0] < 0.3  # it was learned, not given
    # independent check: greedy accuracy on fresh samples, decoded by hand
    s = get_task("copy")(torch.Generator().manual_seed(99), 200, "val", length=5, n_symbols=8)
    with torch.no_grad():
        pred = copy_run.model(s.tokens[:, :-1]).argmax(-1)
    hits = (pred == s.tokens[:, 1:])[s.scored[:, 1:]]
    assert hits.float().mean() >= 0.99


def test_history_columns_and_plot(copy_run):
    h = copy_run.history
    assert list(h["step"]) == [0, 40, 80, 120]
    assert {"step", "samples", "tokens", "train_loss", "val_loss", "val_accuracy", "lr"} <= set(
        h.columns
    )
    assert list(h["samples"]) == [0, 40 * 64, 80 * 64, 120 * 64]
    fig = h.plot(["val_loss", "val_accuracy"], x="samples")
    assert [t.name for t in fig.data] == ["val_loss", "val_accuracy"]
    assert list(fig.data[0].x) == list(h["samples"])
    assert len(copy_run.plot().data) == len(h.metrics())
    with pytest.raises(ValueError, match="no tracked metric 'nope'"):
        h.plot("nope")


def test_saved_folder_loads_everywhere_and_is_stable(copy_run):
    model = idiomlens.load_model(copy_run.dir)
    assert _weights_equal(model, copy_run.model)
    assert model.tokenizer.decode([1, 2, 9]) == "0 1 |"
    report = verify_stable_load(copy_run.dir)
    assert report.ok and report.deterministic and report.max_logit_diff == 0.0
    back = TrainedLM.load(copy_run.dir)
    assert back.history.equals(copy_run.history) and back.metrics == copy_run.metrics
    rows = [json.loads(line) for line in (copy_run.dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(copy_run.history["step"])


def test_verify_stable_load_catches_changed_weights(tmp_path):
    run = train_lm(tiny_config(), out=tmp_path / "r")
    from safetensors.torch import load_file, save_file

    weights = load_file(run.dir / "model.safetensors")
    weights["embed.W_E"][1:] *= -1  # (a constant shift would vanish in LayerNorm)
    save_file(weights, run.dir / "model.safetensors")
    with pytest.raises(ValueError, match="not the saved one"):
        verify_stable_load(run.dir)
    assert not verify_stable_load(run.dir, strict=False).ok


def test_training_is_bitwise_reproducible_and_seed_dependent(tmp_path):
    a = train_lm(tiny_config(), out=tmp_path / "a")
    b = train_lm(tiny_config(), out=tmp_path / "b")
    c = train_lm(tiny_config(seed=1), out=tmp_path / "c")
    assert _weights_equal(a.model, b.model) and a.history.equals(b.history)
    assert not torch.equal(a.model.W_E, c.model.W_E)
    assert not torch.are_deterministic_algorithms_enabled()  # the scoped settings are restored


class Crash(Exception):
    pass


def test_a_killed_run_resumes_to_the_same_final_weights(tmp_path):
    cfg = tiny_config(checkpoint_every=5, steps=14)
    whole = train_lm(cfg, out=tmp_path / "whole")

    def crash_at_8(ctx):
        if ctx.step == 8:
            raise Crash

    with pytest.raises(Crash):
        train_lm(cfg, out=tmp_path / "killed", callbacks=[crash_at_8])
    assert (tmp_path / "killed" / "checkpoint.pt").is_file()
    assert not (tmp_path / "killed" / "training.json").exists()
    resumed = train_lm(cfg, out=tmp_path / "killed")
    assert _weights_equal(whole.model, resumed.model)
    assert whole.history.equals(resumed.history)  # logged once per step, none repeated
    assert not (tmp_path / "killed" / "checkpoint.pt").exists()
    again = train_lm(cfg, out=tmp_path / "killed")  # finished: loaded, not retrained
    assert _weights_equal(again.model, whole.model)
    with pytest.raises(ValueError, match="another config"):
        train_lm(tiny_config(seed=5), out=tmp_path / "killed")


def test_sigkilled_subprocess_resumes_to_the_same_weights(tmp_path):
    cfg = tiny_config(checkpoint_every=3, steps=30)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    script = (
        "import os, signal, sys\n"
        "from idiomlens.training.lab import train_lm\n"
        "def die(ctx):\n"
        "    if ctx.step == 20: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"train_lm({str(path)!r}, out={str(tmp_path / 'run')!r}, callbacks=[die])\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    resumed = train_lm(path, out=tmp_path / "run")
    whole = train_lm(path, out=tmp_path / "whole")
    assert _weights_equal(whole.model, resumed.model)


def test_two_by_two_sweep_gives_four_runs_and_a_summary(tmp_path):
    cfg = tiny_config(lr=[1e-2, 3e-3], steps=4)
    cfg["model"]["normalization_type"] = ["LN", None]  # an architecture knob sweeps too
    runs = train_lm(cfg, out=tmp_path / "sweep")
    assert isinstance(runs, list) and len(runs) == 4
    dirs = {r.dir for r in runs}
    assert len(dirs) == 4 and all(d.parent == tmp_path / "sweep" for d in dirs)
    assert {r.model.cfg.normalization_type for r in runs} == {"LN", None}
    summary = runs.summary
    assert len(summary) == 4 and {"run", "lr", "normalization_type", "val_loss", "dir"} <= set(
        summary.columns
    )
    pairs = {(r["lr"], r["normalization_type"] if isinstance(r["normalization_type"], str) else None)
             for r in summary.to_dict("records")}  # fmt: skip
    assert pairs == {(lr, n) for lr in (1e-2, 3e-3) for n in ("LN", None)}
    assert (tmp_path / "sweep" / "summary.csv").is_file()
    for r in runs:
        assert verify_stable_load(r.dir).ok


def test_epochs_warmup_schedules_and_options(tmp_path):
    run = train_lm(tiny_config(steps=None, epochs=0.5, schedule="linear", warmup=2, weight_decay=0.1,
                               grad_clip=None, log_every=1, loss="all"), out=tmp_path / "e")  # fmt: skip
    assert run.history["step"].max() == 13  # ceil(0.5 * 200 / 8)
    lrs = run.history["lr"].dropna().tolist()
    expected = [1e-2 * (s + 1) / 2 if s < 2 else 1e-2 * (1 - (s - 2) / 11) for s in range(13)]
    assert lrs == pytest.approx(expected)  # warm-up, then linear decay (step s uses lr(s))
    assert run.history["train_loss"].notna().sum() == 13


def test_cli_train_and_its_config_error(tmp_path, capsys):
    from idiomlens.cli import main

    path = tmp_path / "cfg.toml"
    path.write_text(
        '[model]\nn_layers = 1\nd_model = 16\nattn_only = true\n[data]\ntask = "reverse"\nlength = 3\n'
        "n_train = 100\nn_val = 20\n[train]\nsteps = 3\nbatch_size = 4\n"
    )
    assert (
        main(["train", "--config", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    )
    assert "val_loss" in capsys.readouterr().out
    assert verify_stable_load(tmp_path / "out").ok
    path.write_text('[model]\nn_layers = "two"\nd_model = 16\n[data]\ntask = "copy"\n')
    assert main(["train", "--config", str(path)]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"idiomlens: error: {path}: model.n_layers: expected int, got 'two'"
    )


#: Lighter version of benchmarks/bench_lab.py --induction (that one trains longer and
#: wider): 2-layer attention-only, shortformer positions (positions enter attention
#: scores only, which rules out the positional shortcut a standard-position model finds
#: first on this task), ~20 s on one CPU thread.
INDUCTION = {
    "model": {
        "n_layers": 2,
        "d_model": 32,
        "n_heads": 2,
        "attn_only": True,
        "positional_embedding_type": "shortformer",
    },
    "data": {
        "task": "induction",
        "length": 10,
        "min_length": 5,
        "n_symbols": 24,
        "n_train": 12000,
        "n_val": 300,
    },
    "train": {
        "steps": 400,
        "batch_size": 32,
        "lr": 1e-2,
        "warmup": 20,
        "eval_every": 100,
        "progress": False,
    },
}


def test_induction_training_develops_a_layer_1_induction_head(tmp_path):
    run = train_lm(INDUCTION, out=tmp_path / "ind")
    params = {k: INDUCTION["data"][k] for k in ("length", "min_length", "n_symbols")}
    s = get_task("induction")(torch.Generator().manual_seed(123), 40, "val", **params)
    prompts = [
        run.tokenizer.decode(r[1 : int(m.sum())]) for r, m in zip(s.tokens, s.real, strict=True)
    ]
    ind = idiomlens.detect_heads(run.model, prompts, "induction")
    prev = idiomlens.detect_heads(run.model, prompts, "previous_token")
    ((layer, head, score),) = ind.top(1)
    from idiomlens.models import build_model
    from idiomlens.training.lab.config import LabConfig
    from idiomlens.training.lab.data import build_data
    from idiomlens.training.lab.loop import model_fields

    cfg = LabConfig.from_dict(INDUCTION)
    init = build_model(model_fields(cfg, build_data(cfg)), seed=0, tokenizer=run.tokenizer).eval()
    ((_, _, init_score),) = idiomlens.detect_heads(init, prompts, "induction").top(1)
    assert layer == 1, ind.mean()  # it composes with layer 0, as an induction head must
    assert score >= 0.2 and score >= 1.5 * init_score, (score, init_score)
    assert score > float(prev.mean()[layer, head])  # an induction head, not a previous-token one
    assert prev.top(1)[0][0] == 0  # ... fed by a previous-token head in layer 0
    assert run.history["val_accuracy"].iloc[-1] > 0.6


def test_trained_models_work_with_the_attention_view(copy_run):
    from idiomlens.data import IdiomExample
    from idiomlens.viz.attention import attention_view

    text = "0 1 2 3 4 | 0 1 2 3 4"
    view = attention_view(copy_run.model, IdiomExample("c", text, (0, 9)), [(1, 0)])
    assert view.head_names and "0" in view.tokens[1]
