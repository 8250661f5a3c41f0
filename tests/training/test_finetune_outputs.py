"""What a run leaves: log-spaced checkpoints that load, the result record, the history."""

from __future__ import annotations

import math

import pytest

from idiomlens.models import load_model
from idiomlens.training.finetune import FinetuneResult, finetune
from idiomlens.training.finetune.callbacks import checkpoint_steps
from idiomlens.training.finetune.data import data_hash, read_records

from .conftest import RUN_DEFAULTS


@pytest.mark.parametrize(
    ("total", "spec", "expected"),
    [
        (1000, 4, [1, 6, 32, 178, 1000]),
        (20, 3, [1, 3, 7, 20]),
        (5, 10, [1, 2, 3, 4, 5]),
        (20, 0, [20]),
        (20, (5, 10, 50), [5, 10, 20]),
    ],
)
def test_checkpoint_steps(total, spec, expected):
    assert checkpoint_steps(total, spec) == expected


def test_log_spaced_checkpoints_plus_step_zero_and_end_all_load(run):
    result = run("lora", max_steps=20, checkpoints=3)
    assert result.steps == (0, 1, 3, 7, 20)  # 3 log-spaced saves, step 0 and the end
    assert [p.name for p in result.checkpoints] == [f"checkpoint-{s}" for s in result.steps]
    for folder in (*result.checkpoints, result.final):
        assert load_model(folder).cfg.n_layers == 2


def test_result_records_method_counts_data_hash_and_config(run, corpus):
    result = run("ia3")
    assert result.method == "ia3" and result.objective == "lm"
    assert 0 < result.trainable_params < result.total_params
    assert result.data_sha256 == data_hash(read_records(corpus, fields=("text",)))
    assert result.config["learning_rate"] == RUN_DEFAULTS["lr"]
    assert result.config["max_steps"] == RUN_DEFAULTS["max_steps"]
    assert result.n_train == len(corpus) and result.n_eval == 0
    loaded = FinetuneResult.load(result.out)
    assert loaded == result


def test_same_call_again_returns_the_finished_run_without_training(run, base_dir, corpus):
    result = run("bitfit")
    stamp = (result.final / "model.safetensors").stat().st_mtime_ns
    again = finetune(base_dir("gpt2"), corpus, method="bitfit", out=result.out, **RUN_DEFAULTS)
    assert again == result
    assert (result.final / "model.safetensors").stat().st_mtime_ns == stamp


def test_history_eval_curve_schedule_and_plot(run):
    result = run(
        "lora", eval_fraction=0.25, eval_every=2, warmup=2, schedule="cosine", checkpoints=0
    )
    history = result.history
    train = history[history["loss"].notna()]
    assert list(train["step"]) == list(range(1, 7))
    evals = history[history["eval_loss"].notna()]
    assert list(evals["step"]) == [2, 4, 6]
    lr = list(train["learning_rate"])
    peak, warm, total = RUN_DEFAULTS["lr"], 2, 6  # linear warm-up, then cosine decay
    expected = [
        peak * s / warm
        if s < warm
        else peak * 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm)))
        for s in range(total)  # the rate used by step s + 1
    ]
    assert lr == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert result.n_eval == 8 and result.n_train == 24
    fig = result.plot()
    assert {t.name for t in fig.data} == {"train loss", "eval loss"}
    assert history.plot().data[0].name == "train loss"
