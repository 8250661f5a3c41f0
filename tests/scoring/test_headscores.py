"""HeadScores: save/load, concat, summaries, dataframe, plots; compare_scores."""

from __future__ import annotations

import itertools

import pytest
import torch

from idiomlens.scoring import HeadScores, compare_scores, score_heads
from idiomlens.viz.heads import plot_comparison, plot_detection, plot_head_scores

from .conftest import synthetic


def make_scores(values: torch.Tensor, prefix: str = "x", kind: str = "idiom") -> HeadScores:
    """HeadScores whose combined score is ``values`` [example, layer, head]."""
    feats = torch.zeros(*values.shape, 5)
    feats[..., 0] = torch.logit(values)
    ids = tuple(f"{prefix}-{i}" for i in range(values.shape[0]))
    return HeadScores(ids=ids, features=feats, scores=values, kind=kind)


def test_save_load_round_trip(model, edge_aligned, tmp_path):
    res = score_heads(model, edge_aligned, kind="literal", progress=False)
    back = HeadScores.load(res.save(tmp_path / "scores"))
    assert back.ids == res.ids and back.kind == "literal" and back.layers == res.layers
    assert back.feature_names == res.feature_names and back.meta == res.meta
    torch.testing.assert_close(back.features, res.features, atol=0, rtol=0)
    torch.testing.assert_close(back.scores, res.scores, atol=0, rtol=0)
    assert res.meta["corpus_hash"] and res.meta["n_heads"] == 4


def test_concat_of_halves_equals_whole(model):
    aligned = synthetic(10, seed=4)
    whole = score_heads(model, aligned, progress=False)
    parts = [
        score_heads(model, aligned[:4], progress=False),
        score_heads(model, aligned[4:], progress=False),
    ]
    joined = HeadScores.concat(parts)
    assert joined.ids == whole.ids
    torch.testing.assert_close(joined.features, whole.features, atol=1e-5, rtol=0)


def test_summaries_and_top_ties():
    v = torch.tensor([[[0.2, 0.9], [0.9, 0.1]], [[0.4, 0.7], [0.7, 0.3]]])
    s = make_scores(v)
    torch.testing.assert_close(s.mean(), v.mean(0))
    torch.testing.assert_close(s.std(), v.std(0))
    torch.testing.assert_close(s.mean("mean"), torch.logit(v).mean(0))
    top = s.top(3)
    assert [(layer, head) for layer, head, _ in top] == [(0, 1), (1, 0), (0, 0)]  # tie -> smaller
    assert top[0][2] == pytest.approx(0.8)
    assert s.select(["x-1"]).scores.shape == (1, 2, 2)
    with pytest.raises(KeyError, match="nope"):
        s.select(["nope"])
    with pytest.raises(ValueError, match="unknown feature"):
        s.mean("bogus")
    with pytest.raises(ValueError, match="do not agree"):
        HeadScores(ids=("a",), features=torch.zeros(2, 1, 1, 5), scores=torch.zeros(2, 1, 1))


def test_dataframe_long_format(model, edge_aligned):
    res = score_heads(model, edge_aligned[:3], layers=[1], progress=False)
    df = res.to_dataframe()
    assert len(df) == 3 * 1 * 4
    assert list(df.columns[:5]) == ["id", "kind", "layer", "head", "score"]
    row = df[(df.id == res.ids[2]) & (df["head"] == 3)].iloc[0]
    assert row.layer == 1
    assert row.score == pytest.approx(res.scores[2, 0, 3].item())
    assert row.phrase == pytest.approx(res.features[2, 0, 3, 3].item())


def test_plots(model, edge_aligned):
    idiom = score_heads(model, edge_aligned[:4], progress=False)
    literal = score_heads(model, edge_aligned[:4], kind="literal", progress=False)
    fig = idiom.plot()
    assert fig.data[0].type == "heatmap" and len(fig.data[0].z) == 2
    scatter = idiom.plot(literal)
    assert scatter.data[0].type == "scatter" and len(scatter.data[0].x) == 8
    assert plot_head_scores(idiom, feature="max").data[0].z is not None
    df = compare_scores(idiom, literal, n_boot=50, n_perm=50).to_dataframe()
    assert plot_comparison(df).data[0].type == "heatmap"
    from idiomlens.scoring import detect_heads

    assert plot_detection(detect_heads(model, edge_aligned[:2], "previous_token")).data


def exact_sign_flip_p(d: torch.Tensor) -> float:
    n, obs = len(d), abs(d.mean().item())
    hits = sum(
        abs(sum(s * x for s, x in zip(signs, d.tolist(), strict=True)) / n) >= obs - 1e-12
        for signs in itertools.product((-1, 1), repeat=n)
    )
    return hits / 2**n


def test_compare_paired_against_exact_test():
    gen = torch.Generator().manual_seed(0)
    a_vals = torch.rand(9, 1, 2, generator=gen) * 0.5 + 0.25
    shift = torch.tensor([0.1, 0.0])  # head 0 shifted, head 1 not
    b_vals = (a_vals - shift + 0.05 * torch.randn(9, 1, 2, generator=gen)).clamp(0.01, 0.99)
    a, b = make_scores(a_vals, "fig"), make_scores(b_vals, "para")
    df = compare_scores(
        a, b, pair_key=lambda i: i.split("-")[1], n_perm=4000, n_boot=2000
    ).to_dataframe()
    d = (a_vals - b_vals)[:, 0]
    assert list(df["head"]) == [0, 1] and (df["n_a"] == 9).all()
    for h in range(2):
        row = df.iloc[h]
        assert row["diff"] == pytest.approx(d[:, h].mean().item(), abs=1e-6)
        assert row.ci_low <= row["diff"] <= row.ci_high
        assert row.p_value == pytest.approx(exact_sign_flip_p(d[:, h].double()), abs=0.03)
    assert df.iloc[0].p_value < 0.05 and df.iloc[0].ci_low > 0
    # the same seed gives the same numbers; a mapping pairs like the key function
    again = compare_scores(
        a, b, pair_key={f"fig-{i}": f"para-{i}" for i in range(9)}, n_perm=4000, n_boot=2000
    ).to_dataframe()
    assert again.equals(df)


def test_compare_unpaired_and_identical():
    gen = torch.Generator().manual_seed(1)
    a = make_scores(torch.rand(12, 2, 1, generator=gen) * 0.3 + 0.6, "a")
    b = make_scores(torch.rand(15, 2, 1, generator=gen) * 0.3 + 0.1, "b")
    df = compare_scores(a, b, paired=False, n_boot=500, n_perm=500).to_dataframe()
    assert (df.n_a == 12).all() and (df.n_b == 15).all()
    want = a.scores.double().mean(0) - b.scores.double().mean(0)
    assert df["diff"].to_numpy() == pytest.approx(want.flatten().numpy())
    assert (df.p_value < 0.01).all() and (df.ci_low > 0).all()
    same = compare_scores(a, a, n_perm=200, n_boot=200).to_dataframe()
    assert (same["diff"] == 0).all() and (same.p_value == 1).all()
    with pytest.raises(ValueError, match="paired"):
        compare_scores(a, b)  # ids do not match
