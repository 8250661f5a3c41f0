"""ProbeResult persistence and figures, comparisons, cached runs and the CLI."""

from __future__ import annotations

import pytest
import torch

from idiomlens.cli import main
from idiomlens.representations import Representations
from idiomlens.representations.probes import (
    ProbeComparison,
    ProbeProfile,
    ProbeResult,
    compare_probes,
    probe_profile,
    run_probes,
    train_probes,
)
from idiomlens.representations.probes import run as run_module
from idiomlens.representations.probes.synthetic import planted_representations


@pytest.fixture(scope="module")
def reps():
    return planted_representations(n=400, d_model=12, layers=4, signal=(2,), strength=2.0, seed=0)


@pytest.fixture(scope="module")
def result(reps):
    return train_probes(reps, progress=False)


def test_dataframe_columns_and_selectivity(result):
    df = result.to_dataframe()
    assert list(df.columns[:4]) == ["layer", "accuracy", "control_accuracy", "selectivity"]
    assert df.layer.tolist() == [0, 1, 2, 3]
    assert (df.selectivity == df.accuracy - df.control_accuracy).all()
    # accuracies agree with the kept per-example predictions
    assert torch.allclose(result.correct().double().mean(1), result.accuracy)
    assert torch.allclose(result.correct("control").double().mean(1), result.control_accuracy)
    assert len(result.ids) == len(result.test_index) == 100


def test_save_load_round_trip(result, tmp_path):
    loaded = ProbeResult.load(result.save(tmp_path / "p"))
    assert loaded.layers == result.layers and loaded.ids == result.ids
    assert loaded.classes == result.classes and loaded.params == result.params
    for name in ("accuracy", "test_pred", "control_pred", "coef", "converged", "n_iter"):
        assert torch.equal(getattr(loaded, name), getattr(result, name)), name
    assert loaded.meta == result.meta


def test_plot_has_probe_and_control(result):
    fig = result.plot(selectivity=True)
    assert [t.name for t in fig.data] == ["probe", "control", "selectivity", "majority class"]
    assert list(fig.data[0].y) == result.accuracy.tolist()


def test_predict_reproduces_the_test_predictions(reps, result):
    for i, layer in enumerate(result.layers):
        pred = result.predict(reps.vectors(layer)[result.test_index], layer)
        assert (pred == result.test_pred[i]).float().mean() > 0.99


def test_seeded_split_is_deterministic_and_stratified(reps, result):
    again = train_probes(reps, progress=False)
    assert torch.equal(again.test_index, result.test_index)
    assert torch.equal(again.test_pred, result.test_pred)
    other = train_probes(reps, seed=5, progress=False)
    assert not torch.equal(other.test_index, result.test_index)
    y = torch.tensor(reps.labels["label"])
    assert int((y[result.test_index] == 1).sum()) == 50  # 200 per class, 25% each


def test_explicit_split_is_used(reps):
    train, test = list(range(0, 300)), list(range(300, 400))
    r = train_probes(reps, split=(train, test), progress=False)
    assert r.test_index.tolist() == test and r.train_index.tolist() == train
    assert r.ids == tuple(f"ex-{i:05d}" for i in test)


def test_layer_batches_give_the_result_of_one_batch(reps, result):
    batched = train_probes(reps, layers_per_batch=1, progress=False)
    assert torch.equal(batched.test_pred, result.test_pred)
    # the same problems to the same tolerance (float rounding differs with the batch shape)
    assert bool(batched.converged.all()) and bool(result.converged.all())
    assert (batched.n_iter - result.n_iter).abs().max() <= 5
    assert (batched.coef - result.coef).abs().max() <= 5e-3 * result.coef.abs().max()


def test_compare_paired_bootstrap(reps, result):
    shuffled = Representations.from_tensors(
        {x: reps.vectors(x) for x in reps.layers}, ids=reps.ids,
        labels={"label": reps.labels["label"]},
    )  # fmt: skip
    shuffled._tensors[2] = torch.randn_like(reps.vectors(2))  # signal removed at layer 2
    other = train_probes(shuffled, progress=False)
    cmp = compare_probes(result, other, names=("base", "tuned"), n_boot=500)
    assert isinstance(cmp, ProbeComparison) and cmp.paired
    df = cmp.to_dataframe()
    assert {"accuracy_base", "accuracy_tuned", "diff", "ci_low", "ci_high"} <= set(df.columns)
    assert df["diff"][2] < -0.3 and df.ci_high[2] < 0 and df.p_value[2] < 0.01
    assert (df.ci_low <= df["diff"]).all() and (df["diff"] <= df.ci_high).all()
    for layer in (0, 1, 3):  # same vectors, same split: no difference at all
        assert df["diff"][layer] == 0 and df.ci_low[layer] == 0 == df.ci_high[layer]
    assert len(cmp.plot().data) == 5
    loaded = ProbeComparison.load(cmp.save(pytest.importorskip("tempfile").mkdtemp()))
    assert torch.equal(loaded.ci_low, cmp.ci_low)


def test_bootstrap_ci_matches_a_naive_loop(reps, result):
    other = train_probes(reps, C=0.001, progress=False)
    cmp = compare_probes(result, other, n_boot=300, seed=3)
    gen = torch.Generator().manual_seed(3)
    n = len(result.ids)
    ca, cb = result.correct().double(), other.correct().double()
    diffs = []
    for _ in range(300):
        idx = torch.randint(0, n, (n,), generator=gen)
        diffs.append(cb[:, idx].mean(1) - ca[:, idx].mean(1))
    boot = torch.stack(diffs)
    assert torch.allclose(cmp.ci_low, torch.quantile(boot, 0.025, dim=0))
    assert torch.allclose(cmp.ci_high, torch.quantile(boot, 0.975, dim=0))


def test_unpaired_comparison_for_different_splits(reps, result):
    other = train_probes(reps, seed=9, progress=False)
    cmp = compare_probes(result, other, n_boot=200)
    assert not cmp.paired and cmp.ids == ()


def test_probe_profile_over_checkpoints(reps, result):
    weaker = train_probes(reps, C=1e-3, progress=False)
    profile = probe_profile(
        {"step0": result, "step100": weaker, "step200": result}, steps=[0, 100, 200]
    )
    assert isinstance(profile, ProbeProfile)
    assert profile.accuracy.shape == (3, 4)
    assert torch.equal(profile.diff[0], torch.zeros(4, dtype=profile.diff.dtype))
    assert torch.equal(profile.diff[2], profile.diff[0])
    df = profile.to_dataframe()
    assert len(df) == 12 and set(df.checkpoint) == {"step0", "step100", "step200"}
    assert len(profile.plot().data) == 3 and profile.plot(kind="heatmap").data[0].type == "heatmap"


def test_run_probes_caches_and_resumes(reps, tmp_path, monkeypatch):
    d = reps.save(tmp_path / "reps")
    out = tmp_path / "out"
    calls = []
    real = run_module.train_probes

    def counting(*args, **kwargs):
        calls.append(kwargs.get("layers"))
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "train_probes", counting)
    first = run_probes(d, out=out, layers_per_chunk=2, progress=False)
    assert calls == [[0, 1], [2, 3]]
    direct = train_probes(reps, progress=False)
    assert torch.equal(first.test_pred, direct.test_pred)
    assert torch.allclose(first.accuracy, direct.accuracy)
    again = run_probes(d, out=out, layers_per_chunk=2, progress=False)
    assert len(calls) == 2 and torch.equal(again.test_pred, first.test_pred)  # served
    # a killed run: the merged result and one chunk are gone -> only that chunk reruns
    (out / "result.json").unlink()
    import shutil

    shutil.rmtree(out / "chunks" / "chunk-000001")
    resumed = run_probes(d, out=out, layers_per_chunk=2, progress=False)
    assert calls[2:] == [[2, 3]] and torch.equal(resumed.test_pred, first.test_pred)
    # other parameters -> a fresh run
    run_probes(d, out=out, layers_per_chunk=2, seed=1, progress=False)
    assert calls[3:] == [[0, 1], [2, 3]]
    assert ProbeResult.load(out).params["seed"] == 1


def test_fingerprint_ignores_other_files_and_sees_changed_vectors(reps, tmp_path):
    d = reps.save(tmp_path / "reps")
    before = run_module.representations_fingerprint(d)
    (d / "probes-label").mkdir()
    (d / "notes.txt").write_text("hello")
    assert run_module.representations_fingerprint(d) == before
    changed = Representations.from_tensors(
        {x: reps.vectors(x) + (x == 3) for x in reps.layers}, ids=reps.ids, labels=reps.labels
    )
    assert run_module.representations_fingerprint(changed.save(tmp_path / "r2")) != before


def test_cli_probe(reps, tmp_path, capsys):
    d = reps.save(tmp_path / "reps")
    assert main(["probe", "--reps", str(d), "--labels", "label", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "selectivity" in text and "ProbeResult (4 layers, 100 test rows)" in text
    saved = ProbeResult.load(d / "probes-label")
    assert torch.allclose(saved.accuracy, train_probes(reps, progress=False).accuracy)
    assert main(["probe", "--reps", str(d), "--labels", "nope", "--out", str(tmp_path / "o")]) == 2
    assert "no label field 'nope'" in capsys.readouterr().err
    assert main(["probe", "--reps", str(tmp_path / "missing")]) == 2
    assert "no saved Representations" in capsys.readouterr().err
