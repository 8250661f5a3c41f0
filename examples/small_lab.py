# %% [markdown]
# # The small-transformer lab
#
# Train small `HookedTransformer`s from a config, try ideas with hooks and callbacks
# instead of editing a trainer, then sample and measure perplexity. Offline, about a
# minute on one CPU thread. Run: `python examples/small_lab.py [OUT_DIR]`.

# %%
from __future__ import annotations

import sys

import torch

import idiomlens as il
from idiomlens.training.lab import Callback

out = sys.argv[1] if len(sys.argv) > 1 else "small-lab-out"

config = {
    "model": {"n_layers": 2, "d_model": 32, "n_heads": 4, "attn_only": True},
    "data": {"task": "copy", "length": 5, "n_symbols": 8, "n_train": 4000, "n_val": 300},
    "train": {"steps": 120, "batch_size": 64, "lr": 3e-3, "warmup": 10, "eval_every": 40},
}
run = il.train_lm(config, out=f"{out}/copy")
print(run.history[["step", "val_loss", "val_accuracy"]])
run.history.plot(["val_loss", "val_accuracy"], x="samples").write_html(f"{out}/copy_history.html")
print(il.verify_stable_load(run.dir))

# %% [markdown]
# ## Customising without forking
# Each idea is a few lines: a TransformerLens forward hook or a step callback.

# %%
tiny = {**config, "train": {**config["train"], "steps": 40}}


def cool_scores(scores, hook):  # scale attention scores before the softmax
    return scores * 0.5


def square(mlp_out, hook):  # square the MLP output
    return mlp_out**2


class FreezeHalf(Callback):  # freeze a random half of the blocks each step
    def on_step_start(self, ctx):
        frozen = torch.randperm(ctx.model.cfg.n_layers, generator=ctx.generator)[:1].tolist()
        for i, block in enumerate(ctx.model.blocks):
            block.requires_grad_(i not in frozen)


class Corrupt(Callback):  # corrupt inputs, not targets
    def on_step_start(self, ctx):
        flip = torch.rand(ctx.inputs.shape, generator=ctx.generator) < 0.1
        ctx.inputs = torch.where(flip & (ctx.inputs > 0), 1, ctx.inputs)


def max_param(ctx):  # log the largest parameter every 10 steps
    if ctx.step % 10 == 0:
        ctx.log("max_param", max(p.detach().abs().max() for p in ctx.model.parameters()))


il.train_lm(tiny, out=f"{out}/cool", hooks=[("blocks.0.attn.hook_attn_scores", cool_scores)])
with_mlp = {**tiny, "model": {"n_layers": 2, "d_model": 32, "n_heads": 4}}
il.train_lm(with_mlp, out=f"{out}/square", hooks=[(lambda n: n.endswith("hook_mlp_out"), square)])
logged = il.train_lm(tiny, out=f"{out}/custom", callbacks=[FreezeHalf(), Corrupt(), max_param])
print(logged.history.dropna(subset=["max_param"])[["step", "max_param"]])

# %% [markdown]
# ## Sweeps: a list is an axis; architecture knobs are config fields like any other

# %%
sweep_cfg = {**tiny, "model": {**tiny["model"], "positional_embedding_type": ["standard", "shortformer"]},
             "train": {**tiny["train"], "lr": [1e-3, 3e-3]}}  # fmt: skip
sweep = il.train_lm(sweep_cfg, out=f"{out}/sweep")
print(sweep.summary[["run", "val_loss", "val_accuracy"]])

# %% [markdown]
# ## Sampling and perplexity

# %%
s = il.sample(run.model, ["3 1 4 1 5 |", "2 7 1 6 2 |"], max_new_tokens=5, temperature=0)
print(s.completion)
print(il.sample(run.model, "3 1 4 1 5 |", max_new_tokens=5, top_k=2, seed=0).text)
ppl = il.perplexity(run.model, ["3 1 4 1 5 | 3 1 4 1 5", "3 1 4 1 5 | 5 1 4 1 3"], per_token=True)
print(ppl.per_text, ppl.mean)
