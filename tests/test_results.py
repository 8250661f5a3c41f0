"""Every result type: the shared Result interface, uniform top(k) records, one head label,
and Result.concat checking what is not per-example (meta merged)."""

from __future__ import annotations

import pytest
import torch

from idiomlens._heads import (
    ComponentRank,
    HeadRank,
    Ranking,
    cell_label,
    head_label,
    head_of,
    label_parts,
    parse_head,
)
from idiomlens._io import Result, merge_meta
from idiomlens.attribution import DLAResult
from idiomlens.interventions import AblationResult, AwarenessResult, PatchingResult
from idiomlens.scoring import HeadDetection, HeadScores, ScoreComparison, compare_scores

RANK_COLUMNS = ["rank", "label", "layer", "head", "value"]


def head_scores(n: int = 3, seed: int = 0, prefix: str = "x", **meta) -> HeadScores:
    gen = torch.Generator().manual_seed(seed)
    scores = torch.rand(n, 2, 3, generator=gen)
    ids = tuple(f"{prefix}-{i}" for i in range(n))
    return HeadScores(
        ids=ids, features=torch.rand(n, 2, 3, 5, generator=gen), scores=scores, meta=meta
    )


def detection(n: int = 2) -> HeadDetection:
    scores = torch.arange(n * 2 * 3, dtype=torch.float32).reshape(n, 2, 3) / 12
    return HeadDetection(ids=tuple(f"d-{i}" for i in range(n)), scores=scores, pattern="induction")


def dla() -> DLAResult:
    labels = ("embed", "L0H0", "L0H1", "L0_mlp", "L1H0", "L1H1", "bias")
    att = torch.tensor([0.1, 0.5, -0.7, 0.2, float("nan"), 0.3, 0.0])[None, :, None]
    return DLAResult(
        ids=("a",), labels=labels, groups=("idiom",), attributions=att,
        logits=torch.zeros(1, 1), unembed_bias=torch.zeros(1, 1),
        counts=torch.ones(1, 1, dtype=torch.long), n_layers=2, n_heads=2,
    )  # fmt: skip


def ablation(n: int = 2) -> AblationResult:
    z = torch.arange(n * 3, dtype=torch.float32).reshape(n, 3)
    return AblationResult(
        ids=tuple(f"e-{i}" for i in range(n)), conditions=("L0H0", "L1H1", "both"),
        head_masks=torch.zeros(3, 2, 2, dtype=torch.bool), logit_diff=z, logprob_diff=-z,
        loss_diff=z, nwp_correct=z > 2, rank=z.long(), clean_logit=z[:, 0],
        clean_logprob=z[:, 0], clean_loss=z[:, 0], clean_nwp_correct=z[:, 0] > 0,
        clean_rank=z[:, 0].long(), n_word_tokens=z[:, 0].long() + 1,
    )  # fmt: skip


def awareness() -> AwarenessResult:
    return AwarenessResult(
        ids=("a", "b", "c"), splits=("fig", "lit"), split_index=torch.tensor([0, 0, 1]),
        loss=torch.tensor([1.0, 2.0, 3.0]), nwp_correct=torch.tensor([True, False, True]),
        logprob=torch.tensor([-1.0, -2.0, -3.0]),
    )  # fmt: skip


def patching() -> PatchingResult:
    effects = torch.tensor([[[0.1, 0.9], [0.0, -1.5]], [[0.3, 0.2], [0.4, 0.0]]])
    return PatchingResult(effects, "head_by_pos", ("layer", "pos", "head"), 1.0, 0.0)


def comparison() -> ScoreComparison:
    return compare_scores(head_scores(5, 0), head_scores(5, 1), n_boot=20, n_perm=20)


ALL = {
    "HeadScores": head_scores,
    "HeadDetection": detection,
    "DLAResult": dla,
    "AblationResult": ablation,
    "AwarenessResult": awareness,
    "PatchingResult": patching,
    "ScoreComparison": comparison,
}


@pytest.mark.parametrize("name", list(ALL))
def test_every_result_has_the_shared_interface(name, tmp_path):
    result = ALL[name]()
    assert isinstance(result, Result)
    assert isinstance(result.ids, tuple) and isinstance(result.meta, dict)
    frame = result.to_dataframe()
    assert len(frame) > 0 and "id" in frame.columns or name in ("PatchingResult", "ScoreComparison")
    fig = result.plot()
    assert fig.data and hasattr(fig, "to_html")
    back = type(result).load(result.save(tmp_path / name))
    assert back.ids == result.ids and back.meta == result.meta
    assert back.to_dataframe().equals(frame)


@pytest.mark.parametrize(
    "name, kind",
    [
        ("HeadScores", HeadRank),
        ("HeadDetection", HeadRank),
        ("ScoreComparison", HeadRank),
        ("DLAResult", ComponentRank),
        ("PatchingResult", ComponentRank),
        ("AblationResult", ComponentRank),
    ],
)
def test_top_has_one_shape(name, kind):
    top = ALL[name]().top(3)
    assert isinstance(top, Ranking) and len(top) == 3
    assert all(isinstance(r, kind) for r in top)
    for r in top:  # every record names itself the same way
        assert isinstance(r.label, str) and isinstance(r.value, float)
        if r.head is not None:
            assert r.label.startswith(head_label(r.layer, r.head)[:2])
    assert list(top.to_dataframe().columns) == RANK_COLUMNS
    values = [r.value for r in top]
    if name in ("PatchingResult",):
        values = [abs(v) for v in values]
    if name == "ScoreComparison":
        values = [abs(v) for v in values]
    assert values == sorted(values, reverse=True)


def test_top_records_against_a_naive_ranking():
    s = head_scores(6, 3)
    mean = s.scores.mean(0)
    cells = sorted(
        ((float(mean[layer, h]), layer, h) for layer in range(2) for h in range(3)),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    assert [(r.layer, r.head) for r in s.top(4)] == [(lh[1], lh[2]) for lh in cells[:4]]
    layer, head, value = s.top(1)[0]  # still unpacks like the old tuples
    assert (layer, head) == s.top(1).heads()[0] and value == pytest.approx(cells[0][0])
    d = dla()
    top = d.top(7)
    assert top.labels()[:3] == ["L0H0", "L1H1", "L0_mlp"] and top.labels()[-1] == "L1H0"  # NaN last
    assert top[0].layer == 0 and top[0].head == 0 and top[2].head is None
    assert d.top(1, absolute=True)[0] == ("L0H1", pytest.approx(-0.7))
    p = patching()
    assert p.top(2) == [("L0P1H1", -1.5), ("L0P0H1", pytest.approx(0.9))]
    assert p.top(1)[0].layer == 0 and p.top(1)[0].head == 1
    assert ablation().top(1, metric="logprob_diff")[0].label == "L0H0"
    with pytest.raises(ValueError, match="unknown metric"):
        ablation().top(1, metric="nope")


def test_head_labels_are_built_and_parsed_in_one_place():
    for layer, head in [(0, 0), (3, 11), (27, 5)]:
        text = head_label(layer, head)
        assert parse_head(text) == (layer, head) == parse_head(text.lower())
        assert parse_head(f"{layer}.{head}") == (layer, head) and head_of(text) == (layer, head)
    for bad in ("one.two", "L1", "1.2.3", "H1L2", ""):
        with pytest.raises(ValueError, match="LAYER.HEAD"):
            parse_head(bad)
    assert head_of("L1P2H3") is None and head_of("L1_mlp") is None and head_of("embed") is None
    assert label_parts(cell_label(("layer", "pos", "head"), (1, 2, 3))) == (1, 2, 3)
    assert patching().labels[3] == cell_label(("layer", "pos", "head"), (0, 1, 1))
    m = dla().head_matrix()
    assert m[0, 1] == pytest.approx(-0.7) and torch.isnan(m[1, 0])


def test_detection_dataframe_and_plot_match_the_scores():
    det = detection(2)
    frame = det.to_dataframe()
    assert len(frame) == det.scores.numel()
    row = frame[(frame.id == "d-1") & (frame.layer == 1) & (frame["head"] == 2)].iloc[0]
    assert row.score == pytest.approx(float(det.scores[1, 1, 2])) and row.pattern == "induction"
    z = torch.tensor(det.plot().data[0].z)
    torch.testing.assert_close(z, det.mean())


def test_comparison_result_keeps_the_old_table():
    a, b = head_scores(6, 0, "fig"), head_scores(6, 1, "para")
    cmp = compare_scores(a, b, pair_key=lambda i: i.split("-")[1], n_boot=50, n_perm=50)
    frame = cmp.to_dataframe()
    assert list(frame.columns) == [
        "layer", "head", "n_a", "n_b", "mean_a", "mean_b", "diff", "ci_low", "ci_high", "p_value",
    ]  # fmt: skip
    want = (a.scores - b.scores).double().mean(0)
    torch.testing.assert_close(cmp.diff, want)
    assert frame["diff"].tolist() == pytest.approx(want.flatten().tolist())
    assert cmp.ids == a.ids and cmp.other_ids == b.ids and cmp.n_a == 6
    assert cmp.plot().data[0].type == "heatmap"
    assert set(cmp.significant(1.0)) == {(layer, h) for layer in range(2) for h in range(3)}


def test_concat_merges_meta_and_checks_what_is_shared():
    parts = [
        head_scores(2, 0, "a", kind="idiom", corpus_hash="h1", n_examples=2, batch_tokens=4096),
        head_scores(3, 1, "b", kind="idiom", corpus_hash="h2", n_examples=3, batch_tokens=2048),
    ]
    joined = HeadScores.concat(parts)
    assert joined.ids == parts[0].ids + parts[1].ids and len(joined) == 5
    assert joined.meta["n_examples"] == 5 and joined.meta["kind"] == "idiom"
    assert joined.meta["corpus_hash"] == merge_meta([p.meta for p in parts])["corpus_hash"]
    assert joined.meta["corpus_hash"] not in ("h1", "h2")
    assert joined.meta["batch_tokens"] == [4096, 2048]  # an execution setting, recorded
    swapped = HeadScores.concat(parts[::-1])
    assert swapped.meta["corpus_hash"] != joined.meta["corpus_hash"]  # order matters

    other_kind = head_scores(2, 2, "c", kind="literal")
    with pytest.raises(ValueError, match=r"meta\['kind'\]"):
        HeadScores.concat([head_scores(1, 0, "a", kind="idiom"), other_kind])
    lit = head_scores(2, 2, "c")
    lit.kind = "literal"
    with pytest.raises(ValueError, match="field 'kind'"):
        HeadScores.concat([parts[0], lit])
    a, b = ablation(2), ablation(2)
    b.head_masks = b.head_masks.clone()
    b.head_masks[0, 0, 0] = True
    with pytest.raises(ValueError, match="field 'head_masks'"):
        AblationResult.concat([a, b])
    with pytest.raises(ValueError, match="zero"):
        HeadScores.concat([])
    # the same weights loaded from another folder (a resumed run): names may differ
    model = {"source": "/a", "processing": None, "kind": "hooked_dir"}
    a = head_scores(1, 0, "a", model_name="m1", model=model)
    b = head_scores(1, 1, "b", model_name="m2", model={**model, "source": "/b"})
    meta = HeadScores.concat([a, b]).meta
    assert meta["model"]["source"] == ["/a", "/b"] and meta["model_name"] == ["m1", "m2"]
    c = head_scores(1, 1, "b", model_name="m1", model={**model, "kind": "hf_checkpoint"})
    with pytest.raises(ValueError, match=r"meta\['model'\]\['kind'\]"):
        HeadScores.concat([a, c])
    merged = AwarenessResult.concat([awareness(), awareness()])
    assert merged.loss.shape == (6,) and merged.splits == ("fig", "lit")
