"""compare_checkpoints: each model computed once through the run engine, differences vs
the base equal a direct computation, bootstrap CIs, and a figure across steps."""

from __future__ import annotations

import pytest
import torch

import idiomlens.scoring
from idiomlens.attribution import direct_logit_attribution
from idiomlens.models import load_model
from idiomlens.scoring import score_heads
from idiomlens.training.finetune import CheckpointComparison, compare_checkpoints
from idiomlens.training.finetune.compare import bootstrap_mean


@pytest.fixture(scope="module")
def small(corpus):
    return corpus[:12]


@pytest.fixture(scope="module")
def trained(run):
    return run("lora", max_steps=12, checkpoints=2)


def test_score_differences_equal_a_direct_computation(trained, small, tmp_path, monkeypatch):
    cmp = compare_checkpoints(
        None, trained, small, analysis="score", out=tmp_path, n_boot=200, progress=False
    )
    assert cmp.steps == trained.steps and cmp.labels[0] == "checkpoint-0"
    base = score_heads(load_model(trained.source), small)
    last = score_heads(load_model(trained.checkpoints[-1]), small)
    diff = (last.scores - base.scores).mean(0).reshape(-1)
    assert torch.allclose(cmp.stat[-1], diff, atol=1e-6)
    assert torch.allclose(cmp.level[0], base.mean().reshape(-1), atol=1e-6)
    assert torch.allclose(cmp.level[-1], last.mean().reshape(-1), atol=1e-6)
    assert cmp.stat[0].abs().max() == 0  # LoRA starts as the identity
    assert (cmp.ci_low <= cmp.stat + 1e-7).all() and (cmp.stat <= cmp.ci_high + 1e-7).all()
    assert (cmp.n == len(small)).all()
    assert cmp.units[:2] == ("L0H0", "L0H1")

    # every model is cached: a second call computes nothing
    def boom(*args, **kwargs):
        raise AssertionError("recomputed")

    monkeypatch.setattr(idiomlens.scoring, "score_heads", boom)
    again = compare_checkpoints(
        None, trained.out, small, analysis="score", out=tmp_path, n_boot=200, progress=False
    )
    assert torch.equal(again.stat, cmp.stat)

    fig = cmp.plot(k=3)
    assert len(fig.data) == 3 and list(fig.data[0].x) == list(cmp.steps)
    assert cmp.top(3) == [f"L{layer}H{head}" for layer, head, _ in base.top(3)]
    frame = cmp.to_dataframe()
    assert len(frame) == len(cmp.steps) * len(cmp.units) and "diff" in frame
    cmp.save(tmp_path / "saved")
    assert torch.equal(CheckpointComparison.load(tmp_path / "saved").stat, cmp.stat)


def test_dla_per_head_differences(trained, small, tmp_path):
    folders = {s: p for s, p in trained.checkpoint_steps.items() if s > 0}
    cmp = compare_checkpoints(
        trained.source, folders, small, analysis="dla", out=tmp_path, n_boot=100, progress=False
    )
    base = direct_logit_attribution(load_model(trained.source), small)
    last = direct_logit_attribution(load_model(trained.checkpoints[-1]), small)
    heads = [i for i, label in enumerate(base.labels) if label.startswith("L") and "H" in label]
    g = base.group_index("idiom")
    expected = torch.nanmean(last.attributions[:, heads, g] - base.attributions[:, heads, g], dim=0)
    assert torch.allclose(cmp.stat[-1], expected, atol=1e-5, equal_nan=True)
    assert cmp.stat.shape == (len(folders), len(heads))
    assert cmp.plot(show="stat").data  # CI bands and lines


def test_bootstrap_ci_matches_the_normal_approximation():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(400, 3, generator=gen) + torch.tensor([0.0, 1.0, -2.0])
    x[::7, 1] = float("nan")
    mean, lo, hi, n = bootstrap_mean(x, n_boot=2000, seed=1)
    present = ~torch.isnan(x)
    assert n.tolist() == present.sum(0).tolist()
    for j in range(3):
        col = x[present[:, j], j].double()
        assert mean[j] == pytest.approx(col.mean().item(), abs=1e-6)
        half = 1.96 * col.std().item() / len(col) ** 0.5
        assert (hi[j] - lo[j]).item() == pytest.approx(2 * half, rel=0.15)


def test_unknown_analysis_is_one_clear_error(trained, small, tmp_path):
    with pytest.raises(
        ValueError, match="unknown analysis 'probes'.*known: dla, overlap, probe, score"
    ):
        compare_checkpoints(None, trained, small, analysis="probes", out=tmp_path)
