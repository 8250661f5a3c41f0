"""Geometry metrics: known truths, duplicates, bad input, the tidy result and the CLI."""

from __future__ import annotations

import math

import pytest
import torch

from idiomlens.cli import main
from idiomlens.representations import Representations
from idiomlens.representations.geometry import (
    GeometryResult,
    density_clusters,
    geometry,
    intrinsic_dimension,
    label_overlap,
    neighbourhood_overlap,
)

Q = {"progress": False}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def gaussian_5d_in_100d(n: int = 2000) -> torch.Tensor:
    g = _gen(0)
    return torch.randn(n, 5, generator=g, dtype=torch.float64) @ torch.randn(
        5, 100, generator=g, dtype=torch.float64
    )


def sheet_2d_in_50d(n: int = 2000) -> torch.Tensor:
    """A curved 2-d sheet: (u, v) -> smooth features -> a random linear map to 50-d."""
    g = _gen(1)
    u = torch.rand(n, 2, generator=g, dtype=torch.float64) * 2 - 1
    feats = torch.cat([u, torch.sin(3 * u), torch.cos(2 * u), u[:, :1] * u[:, 1:], u**2], 1)
    return feats @ torch.randn(feats.shape[1], 50, generator=g, dtype=torch.float64)


def blobs(
    n_per: int = 150, n_blobs: int = 4, dim: int = 8, seed: int = 2
) -> tuple[torch.Tensor, list[str]]:
    g = _gen(seed)
    centres = torch.randn(n_blobs, dim, generator=g) * 15
    x = torch.cat([c + torch.randn(n_per, dim, generator=g) for c in centres])
    return x, [f"c{i}" for i in range(n_blobs) for _ in range(n_per)]


@pytest.fixture(scope="module")
def known():
    return Representations.from_tensors(
        {0: gaussian_5d_in_100d().float(), 1: sheet_2d_in_50d().float()}
    )


@pytest.mark.parametrize("method", ["twonn", "gride"])
def test_id_recovers_known_dimensions(known, method):
    df = intrinsic_dimension(known, method=method, max_scale=8, **Q)
    for layer, truth in [(0, 5), (1, 2)]:
        ids = df[df["layer"] == layer]["id"]
        assert len(ids) == (1 if method == "twonn" else 4)  # GRIDE: n1 = 1, 2, 4, 8
        assert ((ids - truth).abs() <= 0.15 * truth).all(), (layer, ids.tolist())


def test_twonn_linear_fit_through_the_api_config_and_cli(known, tmp_path):
    df = intrinsic_dimension(known, method="twonn", twonn_fit="linear", **Q)
    ml = intrinsic_dimension(known, method="twonn", **Q)
    for layer, truth in [(0, 5), (1, 2)]:
        got = float(df[df["layer"] == layer]["id"].iloc[0])
        assert abs(got - truth) <= 0.15 * truth
        assert got != pytest.approx(float(ml[ml["layer"] == layer]["id"].iloc[0]), rel=1e-9)
    via_geometry = geometry(known, metrics=["twonn"], twonn_fit="linear", **Q).to_dataframe()
    assert via_geometry["value"].tolist() == pytest.approx(df["id"].tolist(), rel=1e-12)
    known.save(tmp_path / "reps")
    argv = ["geometry", "--reps", str(tmp_path / "reps"), "--metrics", "twonn", "--no-progress"]
    assert main([*argv, "--twonn-fit", "linear", "--out", str(tmp_path / "geo")]) == 0
    saved = GeometryResult.load(tmp_path / "geo").to_dataframe()
    assert saved["value"].tolist() == pytest.approx(df["id"].tolist(), rel=1e-12)
    with pytest.raises(ValueError, match="unknown TwoNN fit"):
        geometry(known, metrics=["twonn"], twonn_fit="mle", **Q)


def test_gride_scales_run_while_n2_below_n(known):
    df = intrinsic_dimension(known, method="gride", layers=[1], **Q)
    assert df["scale"].tolist() == [2**i for i in range(10)]  # 2 n1 < 2000
    assert (df["n2"] == 2 * df["scale"]).all() and (df["id_err"] > 0).all()


def test_neighbourhood_overlap_identity_and_independence():
    g = _gen(3)
    n, k = 1500, 30
    a = Representations.from_tensors(
        {0: torch.randn(n, 30, generator=g), 1: torch.randn(n, 10, generator=g)}
    )
    b = Representations.from_tensors(
        {0: torch.randn(n, 30, generator=g), 1: torch.randn(n, 10, generator=g)}
    )
    same = neighbourhood_overlap(a, a, k=k, **Q)
    assert same["overlap"].tolist() == [1.0, 1.0]
    indep = neighbourhood_overlap(a, b, k=k, **Q)["overlap"]
    assert ((indep - k / n).abs() < 0.01).all(), indep.tolist()  # k / N = 0.02


def test_adp_recovers_separated_clusters():
    x, labels = blobs()
    reps = Representations.from_tensors({3: x}, labels={"blob": labels})
    df = density_clusters(reps, **Q)
    assert df["n_clusters"].tolist() == [4]
    assert df["ari"][0] >= 0.9 and df["labels"][0] == "blob"
    assert label_overlap(reps, **Q)["overlap"][0] == pytest.approx(1.0)


def test_duplicates_are_dropped_and_counted():
    x, labels = blobs(n_per=60)
    n = x.shape[0]
    dup = torch.cat([x, x[:7], x[100:103]])  # 10 exact copies of earlier rows
    reps = Representations.from_tensors(
        {0: dup}, labels={"blob": labels + labels[:7] + labels[100:103]}
    )
    ref = Representations.from_tensors({0: x}, labels={"blob": labels})
    for fn in (intrinsic_dimension, density_clusters, label_overlap):
        got, want = fn(reps, **Q), fn(ref, **Q)
        assert got["n_duplicates"].tolist() == [10] and got["n_points"].tolist() == [n]
        assert want["n_duplicates"].tolist() == [0]
        cols = [c for c in got.columns if c != "n_duplicates"]
        assert got[cols].equals(want[cols])
    # rows duplicated in either space of a comparison are dropped from both
    other = Representations.from_tensors({0: torch.randn(dup.shape, generator=_gen(4))})
    assert neighbourhood_overlap(reps, other, k=5, **Q)["n_points"].tolist() == [n]


def test_missing_label_is_one_clear_error():
    x, labels = blobs(n_per=20)
    labels[13] = None
    reps = Representations.from_tensors(
        {0: x}, ids=[f"q{i}" for i in range(80)], labels={"subject": labels}
    )
    for fn in (label_overlap, density_clusters):
        with pytest.raises(ValueError, match=r"label 'subject' is missing for row 'q13'"):
            fn(reps, **Q)
    with pytest.raises(KeyError, match="no label field 'answer'"):
        label_overlap(reps, labels="answer", **Q)


def test_fewer_than_three_distinct_points_is_an_error():
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0], [0.0, 1.0], [2.0, 3.0], [0.0, 1.0]])
    reps = Representations.from_tensors({4: x})
    with pytest.raises(
        ValueError, match=r"layer 4: only 2 distinct points after dropping 3 duplicate rows"
    ):
        intrinsic_dimension(reps, **Q)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_value_names_layer_and_row(bad):
    x = torch.randn(60, 4, generator=_gen(6))
    x[41, 2] = bad
    reps = Representations.from_tensors({3: x}, ids=[f"e{i}" for i in range(60)])
    with pytest.raises(ValueError, match=r"layer 3: row 'e41' has a non-finite value"):
        intrinsic_dimension(reps, **Q)


def test_huge_finite_values_are_not_mistaken_for_non_finite_ones():
    x = torch.randn(60, 4, generator=_gen(7), dtype=torch.float64)
    x[5:8] = 1e38 * (1 + x[5:8] / 100)  # float32 row sums and |x|^2 overflow; all finite
    got = intrinsic_dimension(Representations.from_tensors({0: x}), **Q)
    assert got["n_points"][0] == 60


def test_mismatched_ids_are_an_error():
    x = torch.randn(50, 4, generator=_gen(5))
    a = Representations.from_tensors({0: x}, ids=[f"e{i}" for i in range(50)])
    ids = [f"e{i}" for i in range(50)]
    ids[7], ids[8] = ids[8], ids[7]
    with pytest.raises(
        ValueError, match=r"row 7 has id 'e7' in the first representations but 'e8'"
    ):
        neighbourhood_overlap(a, Representations.from_tensors({0: x}, ids=ids), **Q)
    with pytest.raises(ValueError, match="have 50 and 49 rows"):
        neighbourhood_overlap(a, Representations.from_tensors({0: x[:49]}), **Q)


def test_geometry_shares_one_graph_and_matches_the_single_metrics(monkeypatch, tmp_path):
    from idiomlens.representations.geometry import graphs

    x, labels = blobs(n_per=80)
    y = x + torch.randn(x.shape, generator=_gen(6)) * 2
    reps = Representations.from_tensors(
        {0: x, 2: x * 2 + 1}, labels={"blob": labels}, site="norm", pool="last"
    )
    other = Representations.from_tensors({0: y, 2: y})
    calls = []
    real = graphs.knn_graph
    monkeypatch.setattr(graphs, "knn_graph", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    res = geometry(reps, other=other, max_scale=4, **Q)
    assert len(calls) == 4  # one graph per layer and space
    df = res.to_dataframe()
    assert set(df["metric"]) == {
        "id_twonn",
        "id_gride",
        "n_clusters",
        "ari",
        "label_overlap",
        "neighbourhood_overlap",
    }
    monkeypatch.undo()
    monkeypatch.setattr(graphs, "GRAPH_CACHE_BYTES", 0)  # each metric on its own graph
    single = {
        "id_twonn": intrinsic_dimension(reps, **Q)["id"],
        "id_gride": intrinsic_dimension(reps, method="gride", max_scale=4, **Q)["id"],
        "n_clusters": density_clusters(reps, **Q)["n_clusters"],
        "label_overlap": label_overlap(reps, **Q)["overlap"],
        "neighbourhood_overlap": neighbourhood_overlap(reps, other, **Q)["overlap"],
    }
    for metric, values in single.items():
        assert df[df["metric"] == metric]["value"].tolist() == pytest.approx(
            values.tolist(), rel=1e-12
        )
    loaded = GeometryResult.load(res.save(tmp_path / "geo"))
    assert loaded.to_dataframe().equals(df) and loaded.meta["site"] == "norm"
    fig = res.plot()
    assert len(fig.data) == len(
        set(zip(df["metric"], df["scale"].astype(str), df["labels"].astype(str), strict=True))
    )


def test_geometry_without_labels_skips_label_metrics():
    reps = Representations.from_tensors({0: torch.randn(100, 3, generator=_gen(7))})
    df = geometry(reps, max_scale=2, **Q).to_dataframe()
    assert set(df["metric"]) == {"id_twonn", "id_gride", "n_clusters"}
    assert math.isnan(density_clusters(reps, **Q)["ari"][0])


def test_cli_geometry_reads_a_saved_folder(tmp_path, capsys):
    x, labels = blobs(n_per=50)
    Representations.from_tensors({0: x, 1: x + 1}, labels={"blob": labels}).save(tmp_path / "reps")
    out = tmp_path / "geo"
    assert (
        main(
            [
                "geometry",
                "--reps",
                str(tmp_path / "reps"),
                "--out",
                str(out),
                "--max-scale",
                "4",
                "--no-progress",
            ]
        )
        == 0
    )
    saved = GeometryResult.load(out)
    assert (out / "geometry.csv").is_file() and (out / "geometry.html").is_file()
    assert set(saved.layer.tolist()) == {0, 1}
    assert (
        main(["geometry", "--reps", str(tmp_path / "reps"), "--metrics", "twonn", "--no-progress"])
        == 0
    )
    assert "id_twonn" in capsys.readouterr().out
    assert main(["geometry", "--reps", str(tmp_path / "nope")]) == 2
    assert "no saved Representations" in capsys.readouterr().err
    assert main(["geometry", "--reps", str(tmp_path / "reps"), "--labels", "answer"]) == 2
    assert "no label field 'answer'" in capsys.readouterr().err


def test_two_label_fields_give_one_ari_and_overlap_each_and_one_cluster_count():
    x, labels = blobs(n_per=40)
    half = ["lo" if i < 80 else "hi" for i in range(160)]
    reps = Representations.from_tensors({0: x}, labels={"blob": labels, "half": half})
    df = geometry(reps, max_scale=2, **Q).to_dataframe()
    assert (df["metric"] == "n_clusters").sum() == 1
    for metric in ("ari", "label_overlap"):
        assert sorted(df[df["metric"] == metric]["labels"]) == ["blob", "half"]
    only = density_clusters(reps, labels="half", **Q)
    assert only["labels"].tolist() == ["half"]
