"""The forward-collect primitive against a naive one-example-at-a-time loop."""

from __future__ import annotations

import logging

import pytest
import torch

from idiomlens.data import AlignmentError, IdiomExample
from idiomlens.engine import Collector, Site, collect, forward, hook_order, iter_collect, prepare
from idiomlens.models import tiny_model


def _pool_resid(resid, batch, state):
    """Per example: the mean residual over real tokens and the vector at the idiom's end."""
    real = batch.real_mask().to(resid.dtype)[..., None]
    state["mean"] = (resid * real).sum(1) / real.sum(1)
    rows = torch.arange(batch.size, device=resid.device)
    state["idiom_last"] = resid[rows, batch.spans[:, 1]]


SPEC = Collector(sites=[Site("blocks.1.hook_resid_pre", _pool_resid)], desc="test")


def _naive(model, aligned):
    out = {"mean": [], "idiom_last": []}
    for ex in aligned:
        _, cache = model.run_with_cache(torch.tensor([ex.tokens]))
        resid = cache["blocks.1.hook_resid_pre"][0]
        out["mean"].append(resid.mean(0))
        out["idiom_last"].append(resid[ex.span[1]])
    return {k: torch.stack(v) for k, v in out.items()}


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("batch_tokens", [None, 40, 1])
def test_collect_equals_one_by_one(model, corpus, padding_side, batch_tokens):
    got = collect(
        model, corpus, SPEC, batch_tokens=batch_tokens, padding_side=padding_side, progress=False
    )
    want = _naive(model, got.aligned)
    assert got.ids == tuple(ex.id for ex in corpus)
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-5, rtol=1e-5)


def test_forward_stops_after_last_needed_hook(model):
    calls = []
    hooks = [
        ("blocks.0.attn.hook_z", lambda z, hook: calls.append(hook.name)),
        ("blocks.0.hook_mlp_out", lambda a, hook: calls.append(hook.name)),
    ]
    later = ("blocks.1.hook_resid_pre", lambda a, hook: calls.append(hook.name))
    # hook_z fires before hook_mlp_out whatever order the hooks are given in
    assert hook_order(model, [h for h, _ in hooks[::-1]])[-1] == "blocks.0.hook_mlp_out"
    assert forward(model, torch.tensor([[0, 5, 6]]), hooks[:1]) is None
    assert calls == ["blocks.0.attn.hook_z"]
    logits = forward(model, torch.tensor([[0, 5, 6]]), [later], logits=True)
    assert logits.shape[:2] == (1, 3) and calls[-1] == "blocks.1.hook_resid_pre"


def test_hook_order_follows_the_model_not_the_names():
    """In a parallel attention+MLP block both read resid_pre; the order is still observed."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=1,
        d_model=16,
        d_head=4,
        n_heads=4,
        d_mlp=32,
        n_ctx=8,
        d_vocab=20,
        act_fn="gelu",
        parallel_attn_mlp=True,
        seed=3,
    )
    par = HookedTransformer(cfg)
    names = ["blocks.0.hook_mlp_out", "blocks.0.hook_attn_out", "blocks.0.ln1.hook_normalized"]
    order = hook_order(par, names)
    assert sorted(order) == sorted(names) and order[0] == "blocks.0.ln1.hook_normalized"
    with pytest.raises(ValueError, match="never fire"):
        hook_order(par, ["blocks.0.attn.hook_result"])
    with pytest.raises(ValueError, match="unknown hook"):
        hook_order(par, ["blocks.9.hook_resid_pre"])


def test_oom_halves_the_budget_and_retries(model, corpus, caplog):
    """A batch that runs out of memory is split and retried; results are unchanged."""
    oom = getattr(torch, "OutOfMemoryError", RuntimeError)

    def flaky(resid, batch, state):
        if batch.size > 2:
            raise oom("CUDA out of memory. Tried to allocate 1 GiB")
        _pool_resid(resid, batch, state)

    spec = Collector(sites=[Site("blocks.1.hook_resid_pre", flaky)])
    with caplog.at_level(logging.WARNING, logger="idiomlens.engine.collect"):
        got = collect(model, corpus, spec, progress=False)
    assert "out of memory" in caplog.text
    want = collect(model, corpus, SPEC, batch_size=1, progress=False)
    for name in ("mean", "idiom_last"):
        torch.testing.assert_close(got[name], want[name], atol=1e-6, rtol=1e-6)


def test_oom_on_a_single_example_names_it(model, corpus):
    def always(resid, batch, state):
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(MemoryError, match="fig-"):
        collect(
            model,
            corpus,
            Collector(sites=[Site("blocks.0.hook_resid_pre", always)]),
            batch_size=1,
            progress=False,
        )


def test_other_errors_are_not_retried(model, corpus):
    def broken(resid, batch, state):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        collect(
            model,
            corpus,
            Collector(sites=[Site("blocks.0.hook_resid_pre", broken)]),
            progress=False,
        )


def test_ragged_outputs_and_logits(model, corpus):
    """List outputs (one entry per example) keep corpus order; finish sees the logits."""

    def finish(batch, state, logits):
        real = batch.real_mask()
        return {"argmax": [logits[b][real[b]].argmax(-1) for b in range(batch.size)]}

    got = collect(
        model, corpus, Collector(finish=finish, logits=True), batch_tokens=50, progress=False
    )
    for ex, pred in zip(got.aligned, got["argmax"], strict=True):
        want = model(torch.tensor([ex.tokens]))[0].argmax(-1)
        assert torch.equal(pred, want)


def test_replacing_an_activation(model, corpus):
    """A reduce may return a replacement (how ablations are written)."""

    def zero(z, batch, state):
        return torch.zeros_like(z)

    spec = Collector(
        sites=[Site("blocks.0.attn.hook_z", zero)],
        finish=lambda batch, state, logits: {"last": logits[:, 0]},
        logits=True,
    )
    got = collect(model, corpus, spec, progress=False)
    ex = got.aligned[0]
    want = model.run_with_hooks(
        torch.tensor([ex.tokens]), fwd_hooks=[("blocks.0.attn.hook_z", lambda z, hook: z * 0)]
    )[0, 0]
    torch.testing.assert_close(got["last"][0], want)


def test_streaming_covers_every_example_once(model, corpus):
    seen = torch.cat(
        [idx for idx, _ in iter_collect(model, corpus, SPEC, batch_tokens=30, progress=False)]
    )
    assert sorted(seen.tolist()) == list(range(len(corpus)))


def test_prepare_errors_name_the_example(model, corpus):
    long = IdiomExample("too-long", "word " * 200, (0, 4))
    with pytest.raises(AlignmentError, match="too-long"):
        prepare(model, [long])
    aligned = prepare(model, corpus)
    with pytest.raises(ValueError, match="mixes"):
        prepare(model, [aligned[0], corpus[1]])
    short_ctx = tiny_model(n_ctx=8, seed=0)
    with pytest.raises(AlignmentError, match=aligned[0].id):
        prepare(short_ctx, aligned)
    with pytest.raises(ValueError, match="rows"):
        collect(
            model, corpus, Collector(finish=lambda b, s, lg: {"x": torch.zeros(99)}), progress=False
        )
