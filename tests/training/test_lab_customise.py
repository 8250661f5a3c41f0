"""Customising training without forking: each idea is a few lines of user code passed
to train_lm as a forward hook or a step callback."""

from __future__ import annotations

import torch

from idiomlens.training.lab import Callback, train_lm

from .conftest import tiny_config


def _mlp_config(**train):
    cfg = tiny_config(**train)
    cfg["model"] = {"n_layers": 2, "d_model": 16, "n_heads": 2}  # with MLPs
    return cfg


def test_scale_attention_scores_before_the_softmax(tmp_path):
    seen = []

    def halve_scores(scores, hook):  # user code: 2 lines
        seen.append(hook.name)
        return scores * 0.5

    run = train_lm(
        tiny_config(), out=tmp_path / "a", hooks=[("blocks.0.attn.hook_attn_scores", halve_scores)]
    )
    plain = train_lm(tiny_config(), out=tmp_path / "b")
    assert (
        set(seen) == {"blocks.0.attn.hook_attn_scores"} and len(seen) > 12
    )  # training and evaluation
    assert not torch.equal(run.model.W_Q, plain.model.W_Q)
    # the hook is part of the model's computation: recorded, and needed to verify a reload
    from idiomlens.training.lab import verify_stable_load

    assert verify_stable_load(run.dir, hooks=[("blocks.0.attn.hook_attn_scores", halve_scores)]).ok
    import pytest

    with pytest.raises(ValueError, match="trained with forward hooks"):
        verify_stable_load(run.dir)


def test_square_the_mlp_output(tmp_path):
    outputs = []

    def square(mlp_out, hook):
        outputs.append(mlp_out.detach().clone())
        return mlp_out**2

    train_lm(
        _mlp_config(steps=2, eval_every=2),
        out=tmp_path / "sq",
        hooks=[(lambda name: name.endswith("hook_mlp_out"), square)],
    )
    assert len(outputs) >= 4  # both layers, every forward
    # downstream of the hook the model sees the square: compare one forward by hand
    from idiomlens.training.lab import TrainedLM

    run = TrainedLM.load(tmp_path / "sq")
    tokens = torch.tensor([[0, 1, 2, 3, 6, 1, 2, 3]])
    cache = {}

    def grab(x, hook):
        cache[hook.name] = x
        return x

    with torch.no_grad():
        run.model.run_with_hooks(
            tokens,
            fwd_hooks=[("blocks.0.hook_mlp_out", square), ("blocks.0.hook_resid_post", grab)],
        )
        _, ref = run.model.run_with_cache(
            tokens, names_filter=lambda n: n in ("blocks.0.hook_resid_mid", "blocks.0.hook_mlp_out")
        )
    expected = ref["blocks.0.hook_resid_mid"] + ref["blocks.0.hook_mlp_out"] ** 2
    assert torch.allclose(cache["blocks.0.hook_resid_post"], expected, atol=1e-6)


class FreezeRandomBlocks(Callback):
    """Each step, freeze a random half of the blocks (user code: 6 lines)."""

    def __init__(self):
        self.frozen = []

    def on_step_start(self, ctx):
        n = ctx.model.cfg.n_layers
        chosen = torch.randperm(n, generator=ctx.generator)[: n // 2].tolist()
        for i, block in enumerate(ctx.model.blocks):
            block.requires_grad_(i not in chosen)
        self.frozen.append(
            (chosen, {k: v.detach().clone() for k, v in ctx.model.state_dict().items()})
        )

    def on_step_end(self, ctx):
        chosen, before = self.frozen[-1]
        after = ctx.model.state_dict()
        for i in range(ctx.model.cfg.n_layers):
            moved = any(
                not torch.equal(before[k], after[k])
                for k in before
                if k.startswith(f"blocks.{i}.") and "IGNORE" not in k and "mask" not in k
            )
            assert moved == (i not in chosen), (ctx.step, i, chosen)


def test_freeze_a_random_subset_of_blocks_each_step(tmp_path):
    cb = FreezeRandomBlocks()
    cfg = _mlp_config(steps=6)
    cfg["model"]["n_layers"] = 4
    train_lm(cfg, out=tmp_path / "f", callbacks=[cb])
    choices = [tuple(c) for c, _ in cb.frozen]
    assert len(choices) == 6 and len(set(choices)) > 1  # random, and reproducible:
    cb2 = FreezeRandomBlocks()
    train_lm(cfg, out=tmp_path / "g", callbacks=[cb2])
    assert [tuple(c) for c, _ in cb2.frozen] == choices


def test_corrupt_inputs_but_not_targets(tmp_path):
    seen = []

    class Corrupt(Callback):
        def on_step_start(self, ctx):
            clean = ctx.targets.clone()
            noise = torch.randint(1, 6, ctx.inputs.shape, generator=ctx.generator)
            flip = torch.rand(ctx.inputs.shape, generator=ctx.generator) < 0.3
            ctx.inputs = torch.where(flip & (ctx.inputs != 0), noise, ctx.inputs)
            seen.append((ctx, clean, ctx.inputs.clone()))

    run = train_lm(tiny_config(steps=3), out=tmp_path / "c", callbacks=[Corrupt()])
    for ctx, clean, _ in seen:
        assert torch.equal(ctx.targets, clean)  # targets untouched
    assert any(not torch.equal(c[:, 1:], t[:, :-1]) for _, t, c in seen)  # inputs changed
    assert run.history["step"].max() == 3


def test_log_the_largest_parameter_every_n_steps(tmp_path):
    def log_max_param(ctx):  # user code: 2 lines
        if ctx.step % 3 == 0:
            ctx.log("max_param", max(p.detach().abs().max() for p in ctx.model.parameters()))

    run = train_lm(tiny_config(), out=tmp_path / "m", callbacks=[log_max_param])
    logged = run.history.dropna(subset=["max_param"])
    assert list(logged["step"]) == [3, 6, 9, 12]
    assert logged["max_param"].iloc[-1] == max(
        float(p.detach().abs().max()) for p in run.model.parameters()
    )
    assert "max_param" in run.history.metrics()
    fig = run.plot("max_param")
    assert list(fig.data[0].x) == [3, 6, 9, 12]
