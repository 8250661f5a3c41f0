"""Planted signals: found at their layer; noise layers and control tasks stay at chance."""

from __future__ import annotations

import torch

from idiomlens.representations import Representations
from idiomlens.representations.probes import train_probes
from idiomlens.representations.probes.synthetic import planted_representations

CHANCE_MARGIN = 0.12  # 3-4 binomial std of an accuracy on ~200-250 test rows


def test_planted_signal_is_found_at_its_layer_only():
    reps = planted_representations(n=1000, d_model=32, layers=6, signal=(3,), strength=2.0, seed=0)
    result = train_probes(reps, seed=1, progress=False)
    df = result.to_dataframe()
    assert int(df.accuracy.idxmax()) == 3
    assert df.accuracy[3] > 0.85
    noise = df.drop(index=3)
    assert (abs(noise.accuracy - 0.5) < CHANCE_MARGIN).all(), noise.accuracy.tolist()
    assert (abs(df.control_accuracy - 0.5) < CHANCE_MARGIN).all(), df.control_accuracy.tolist()
    assert df.selectivity[3] > 0.25
    assert (noise.selectivity.abs() < 2 * CHANCE_MARGIN).all()
    assert bool(result.converged.all())


def test_multiclass_planted_signal_and_chance_level():
    reps = planted_representations(
        n=1200, d_model=16, layers=3, signal=(0,), n_classes=4, strength=3.0, seed=2
    )
    df = train_probes(reps, progress=False).to_dataframe()
    assert df.accuracy[0] > 0.8
    assert (abs(df.accuracy[1:] - 0.25) < CHANCE_MARGIN).all()
    assert (abs(df.control_accuracy - 0.25) < CHANCE_MARGIN).all()


def test_example_control_is_a_permutation_within_each_split():
    reps = planted_representations(n=200, d_model=8, layers=1, seed=0)
    result = train_probes(reps, progress=False)
    assert sorted(result.control_target.tolist()) == sorted(result.test_target.tolist())
    assert not torch.equal(result.control_target, result.test_target)


def _token_reps(n_examples=200, length=10, vocab=300, d=16, seed=0):
    """Token rows: each position's vector is its token's embedding plus noise, and a
    context feature saying whether the token lies in the (random) idiom span."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(vocab, d, generator=g)
    context = torch.randn(d, generator=g)
    tokens = torch.randint(0, vocab, (n_examples, length), generator=g)
    start = torch.randint(1, length - 3, (n_examples,), generator=g)
    pos = torch.arange(length)
    inside = (pos[None] >= start[:, None]) & (pos[None] < start[:, None] + 3)
    x = emb[tokens] + 0.3 * torch.randn(n_examples, length, d, generator=g)
    x = x + 2.0 * inside[..., None].float() * context
    rows = x.reshape(-1, d)
    noise = torch.randn(rows.shape, generator=g)
    parity = (tokens % 2).reshape(-1)  # a property of the token type only
    return Representations(
        layers=[0, 1], ids=[f"s{i}" for i in range(n_examples)], site="resid_post", pool="tokens",
        tensors={0: noise, 1: rows},
        labels={"in_idiom": inside.reshape(-1).tolist(), "parity": parity.tolist()},
        token_ids=tokens.reshape(-1), example_index=torch.arange(n_examples).repeat_interleave(length),
        positions=pos.repeat(n_examples),
    )  # fmt: skip


def test_token_probe_splits_by_example_and_uses_the_hewitt_liang_control():
    reps = _token_reps()
    result = train_probes(reps, "in_idiom", progress=False)
    ex = reps.example_index
    train_ex = set(ex[result.train_index].tolist())
    test_ex = set(ex[result.test_index].tolist())
    assert not train_ex & test_ex
    # the control label is a function of the token type
    types = reps.token_ids[result.test_index]
    for t in torch.unique(types).tolist():
        assert len(set(result.control_target[types == t].tolist())) == 1
    df = result.to_dataframe()
    assert df.accuracy[1] > 0.95  # the span is linearly decodable from layer 1
    assert abs(df.accuracy[0] - result.majority_accuracy) < CHANCE_MARGIN
    # the span is not a property of the token type, so the control cannot follow it
    assert (abs(df.control_accuracy - result.majority_accuracy) < CHANCE_MARGIN).all()
    assert df.selectivity[1] > 0.2
    assert result.ids[0] in reps.row_ids


def test_token_type_label_has_low_selectivity():
    """A label that is a property of the token type is what the H&L control catches:
    whatever the probe learns of it, the control (a random label per type) can learn
    as well, so selectivity is near 0 while the span label's is high."""
    reps = _token_reps(seed=1)
    span = train_probes(reps, "in_idiom", progress=False).to_dataframe()
    parity = train_probes(reps, "parity", progress=False).to_dataframe()
    assert abs(parity.selectivity[1]) < 0.1
    assert span.selectivity[1] > 0.2
