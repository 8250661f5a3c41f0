"""compare_checkpoints per layer: neighbourhood overlap with the base and probe accuracy
differences, computed once per model (cached extraction and probes) and checked against
a direct computation."""

from __future__ import annotations

import pytest
import torch

import idiomlens.representations.extraction as extraction
import idiomlens.representations.probes.run as probes_run
from idiomlens.data import IdiomCorpus, demo_corpus
from idiomlens.models import NO_PROCESSING, load_model
from idiomlens.representations import extract, neighbourhood_overlap, train_probes
from idiomlens.representations.geometry import neighbourhood_overlap_points
from idiomlens.training.finetune import compare_checkpoints


@pytest.fixture(scope="module")
def mixed():
    """16 figurative and 16 literal sentences: two classes for the probes."""
    rows = list(demo_corpus("figurative"))[:16] + list(demo_corpus("literal"))[:16]
    return IdiomCorpus(rows, name="mixed")


@pytest.fixture(scope="module")
def trained(run):
    return run("lora", max_steps=12, checkpoints=2)


def _reps(source, corpus):
    return extract(load_model(source, processing=NO_PROCESSING), corpus, progress=False)


def _counting(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_overlap_is_one_for_the_base_weights_and_below_after_training(
    trained, mixed, tmp_path, monkeypatch
):
    kw = dict(analysis="overlap", out=tmp_path, options={"k": 5}, n_boot=100, progress=False)
    cmp = compare_checkpoints(None, trained, mixed, **kw)
    assert cmp.axes == ("layer",) and cmp.statistic == "overlap"
    n_layers = load_model(trained.source).cfg.n_layers
    assert cmp.units == tuple(f"L{x}" for x in range(n_layers))
    assert cmp.steps[0] == 0 and torch.equal(cmp.stat[0], torch.ones(n_layers))  # LoRA B = 0
    assert (cmp.ci_low[0] == 1).all() and (cmp.ci_high[0] == 1).all()
    base, last = _reps(trained.source, mixed), _reps(trained.checkpoints[-1], mixed)
    direct = neighbourhood_overlap(base, last, k=5, progress=False)
    assert torch.allclose(cmp.stat[-1].double(), torch.tensor(direct["overlap"].values), atol=1e-6)
    assert (cmp.stat[-1] < 1).any()  # training moved the representations
    _, points = neighbourhood_overlap_points(base, last, k=5, progress=False)
    assert (cmp.n[-1] == (~points.isnan()).sum(0)).all()
    assert (cmp.ci_low <= cmp.stat + 1e-6).all() and (cmp.stat <= cmp.ci_high + 1e-6).all()
    assert cmp.plot(show="stat").data

    calls = _counting(monkeypatch, extraction, "_compute")
    again = compare_checkpoints(None, trained.out, mixed, **kw)
    assert calls == [] and torch.equal(again.stat, cmp.stat)


def test_probe_difference_is_zero_for_the_base_weights(trained, mixed, tmp_path, monkeypatch):
    kw = dict(analysis="probe", out=tmp_path, params={"seed": 1}, n_boot=100, progress=False)
    cmp = compare_checkpoints(None, trained, mixed, **kw)
    assert torch.equal(cmp.stat[0], torch.zeros_like(cmp.stat[0]))  # same weights, same probe
    base = train_probes(_reps(trained.source, mixed), seed=1, progress=False)
    last = train_probes(_reps(trained.checkpoints[-1], mixed), seed=1, progress=False)
    assert base.ids == last.ids  # the seeded split does not depend on the vectors
    assert torch.allclose(cmp.level[0], base.accuracy.float(), atol=1e-6)
    assert torch.allclose(cmp.level[-1], last.accuracy.float(), atol=1e-6)
    assert torch.allclose(cmp.stat[-1], (last.accuracy - base.accuracy).float(), atol=1e-6)
    assert not torch.allclose(last.coef, base.coef)  # the trained checkpoint's probes differ
    assert (cmp.n == len(base.ids)).all()

    calls = _counting(monkeypatch, extraction, "_compute")
    calls += _counting(monkeypatch, probes_run, "train_probes")
    again = compare_checkpoints(None, trained.out, mixed, **kw)
    assert calls == [] and torch.equal(again.stat, cmp.stat)
