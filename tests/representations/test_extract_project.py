"""Projections (PCA against scikit-learn, t-SNE, UMAP's clear error) and the figures."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import torch

from idiomlens.representations import Representations, extract
from idiomlens.viz.representations import plot_layer_profile, plot_projection


def _reps(n=40, d=12, layers=(0, 3)):
    gen = torch.Generator().manual_seed(0)
    tensors = {
        layer: torch.randn(n, d, generator=gen) * torch.linspace(3, 0.1, d) for layer in layers
    }
    return Representations.from_tensors(
        tensors, labels={"label": ["a", "b"] * (n // 2), "k": list(range(n))}
    )


@pytest.mark.parametrize("n, d", [(40, 12), (8, 20)])  # covariance and Gram branches
def test_pca_equals_scikit_learn(n, d):
    from sklearn.decomposition import PCA

    reps = _reps(n, d)
    df = reps.project(3, method="pca", dims=3)
    ref = PCA(n_components=3, svd_solver="full").fit(reps.vectors(3).double().numpy())
    want = ref.transform(reps.vectors(3).double().numpy())
    got = df[["x", "y", "z"]].to_numpy()
    for i in range(3):  # equal up to each component's sign
        sign = np.sign(got[:, i] @ want[:, i])
        np.testing.assert_allclose(got[:, i], sign * want[:, i], atol=1e-4)
    np.testing.assert_allclose(
        df.attrs["explained_variance_ratio"], ref.explained_variance_ratio_, atol=1e-5
    )
    assert df["layer"].eq(3).all() and list(df["label"][:2]) == ["a", "b"]


def test_tsne_and_umap():
    reps = _reps()
    df = reps.project(0, method="tsne", dims=2, seed=1)
    assert df[["x", "y"]].notna().all().all() and len(df) == 40
    again = reps.project(0, method="tsne", dims=2, seed=1)
    np.testing.assert_allclose(df[["x", "y"]], again[["x", "y"]])  # seeded
    try:
        import umap  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="umap-learn"):
            reps.project(0, method="umap")
    with pytest.raises(ValueError, match="unknown projection 'mds'"):
        reps.project(0, method="mds")
    with pytest.raises(ValueError, match="dims must be 1, 2 or 3"):
        reps.project(0, dims=4)


def test_umap_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install umap-learn"):
        _reps().project(0, method="umap")


def test_scatter_has_a_layer_slider_and_one_trace_per_label():
    reps = _reps()
    fig = plot_projection(reps, label="label")
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["0", "3"]
    assert [t.name for t in fig.data] == ["a", "b", "a", "b"]
    assert steps[1].args[0]["visible"] == [False, False, True, True]
    assert sum(len(t.x) for t in fig.data[:2]) == 40
    numeric = reps.plot("k", layers=[3])
    assert len(numeric.data) == 1 and numeric.data[0].marker.showscale
    with pytest.raises(KeyError, match="no label 'colour'"):
        plot_projection(reps, label="colour")


def test_token_scatter_from_a_real_extraction(model, corpus):
    reps = extract(
        model, corpus, site="resid_pre", pool="tokens", average_duplicates=True, progress=False
    )
    fig = reps.plot("label", layers=[0, 1])
    assert len(fig.layout.sliders[0].steps) == 2
    frame = reps.to_dataframe()
    assert {"row_id", "id", "token_id", "position", "label", "token", "count"} <= set(frame.columns)


def test_layer_profile_lines_and_bands():
    df = pd.DataFrame({"layer": [1, 0, 0, 1], "value": [2.0, 1.0, 1.5, 2.5],
                       "condition": ["base", "base", "lora", "lora"], "lo": 0.0, "hi": 3.0})  # fmt: skip
    fig = plot_layer_profile(df, title="intrinsic dimension")
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["base", "lora"] and list(lines[0].x) == [0, 1]
    assert len(fig.data) == 4  # a band per condition
    single = plot_layer_profile(df[df.condition == "base"].drop(columns=["condition", "lo", "hi"]))
    assert len(single.data) == 1
    with pytest.raises(KeyError, match=r"needs columns \['value'\]"):
        plot_layer_profile(df.drop(columns="value"))
