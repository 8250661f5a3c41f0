# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The small-transformer lab
#
# Train small `HookedTransformer`s from a config, watch an induction head form, try
# ideas with forward hooks and step callbacks instead of editing a trainer, sweep a
# config, then sample and measure perplexity. Offline, about half a minute on one CPU
# thread; every run folder is an ordinary model folder that `load_model` reads.

# %%
import tempfile
import time
from pathlib import Path

import torch

import idiomlens as il
from idiomlens.training.lab import Callback, get_task

torch.set_num_threads(1)
out = Path(tempfile.mkdtemp(prefix="idiomlens-lab-"))

# %% [markdown]
# ## A copy task
#
# The config has four sections: `model` (any `HookedTransformerConfig` field; the
# vocabulary and context default to the data's), `data` (a registered task and its
# parameters, or a file), `tokenizer` (here the task's own symbols) and `train`. A
# copy sample is `BOS x1 .. x5 | x1 .. x5`; loss and accuracy count the copy only.

# %%
config = {
    "model": {"n_layers": 2, "d_model": 32, "n_heads": 4, "attn_only": True},
    "data": {"task": "copy", "length": 5, "n_symbols": 8, "n_train": 4000, "n_val": 300},
    "train": {"steps": 120, "batch_size": 64, "lr": 3e-3, "warmup": 10, "eval_every": 40,
              "progress": False},
}  # fmt: skip
run = il.train_lm(config, out=out / "copy")
final = run.history.iloc[-1]
print(
    f"held-out token accuracy {final.val_accuracy:.3f}, whole copies right {final.val_seq_accuracy:.3f}"
)
run.history[["step", "samples", "train_loss", "val_loss", "val_accuracy"]]

# %%
run.plot(["val_loss", "val_accuracy"], x="samples")

# %% [markdown]
# `verify_stable_load` reloads the folder with `load_model` and checks that the reloaded
# model is the one that was trained: same validation loss as recorded, same logits on
# saved validation samples, and identical logits from two forward passes.

# %%
check = il.verify_stable_load(run.dir)
print(f"ok={check.ok}: val loss {check.recorded_val_loss:.5f} recorded, "
      f"{check.reloaded_val_loss:.5f} reloaded; max logit difference {check.max_logit_diff:.1e}")  # fmt: skip

# %% [markdown]
# ## Sampling and perplexity
#
# `sample` decodes greedily at `temperature=0` (or draws with temperature, top-k, top-p
# from a local, seeded generator). The trained model copies prompts it has never seen:

# %%
prompts = ["3 1 4 1 5 |", "2 7 1 6 2 |"]
greedy = il.sample(run.model, prompts, max_new_tokens=5, temperature=0)
for p, c in zip(prompts, greedy.completion, strict=True):
    print(f"{p} -> {c.strip()!r}  correct copy: {c.strip() == p.removesuffix(' |')}")
drawn = il.sample(run.model, prompts[0], max_new_tokens=5, temperature=1.0, top_k=2, seed=0)
print("top-k sample:", drawn.text[0])

# %% [markdown]
# Perplexity is `exp` of the mean next-token cross-entropy. Over a whole sample it
# includes the five random symbols (which nothing can predict, and which the model was
# not trained on); over the copy positions alone, the correct copy is near 1 and a
# reversed "copy" is far above it.

# %%
texts = ["3 1 4 1 5 | 3 1 4 1 5", "3 1 4 1 5 | 5 1 4 1 3"]
ppl = il.perplexity(run.model, texts, per_token=True)
copy_part = ppl.per_token[:, 6:]  # predictions of tokens 7..11: the copy
print("whole text:", ppl.per_text.numpy().round(2), " overall:", round(ppl.mean, 2))
print("copy tokens, geometric mean:", copy_part.log().mean(1).exp().numpy().round(2))

# %% [markdown]
# ## An induction head
#
# The induction task repeats a random sequence of random length; predicting the second
# copy needs a head that attends to the token *after* the previous occurrence of the
# current token. With shortformer positions (added to queries and keys only) a 2-layer
# attention-only model forms one in a few hundred steps: a previous-token head in
# layer 0 feeding an induction head in layer 1.

# %%
induction = {
    "model": {"n_layers": 2, "d_model": 32, "n_heads": 2, "attn_only": True,
              "positional_embedding_type": "shortformer"},
    "data": {"task": "induction", "length": 10, "min_length": 5, "n_symbols": 24,
             "n_train": 12000, "n_val": 300},
    "train": {"steps": 400, "batch_size": 32, "lr": 1e-2, "warmup": 20, "eval_every": 100,
              "progress": False},
}  # fmt: skip
ind_run = il.train_lm(induction, out=out / "induction")
print(f"held-out accuracy on the second copy: {ind_run.history.val_accuracy.iloc[-1]:.3f}")

# %% [markdown]
# `detect_heads` scores every head against an attention pattern (the mean attention on
# the cells the pattern marks) on fresh prompts drawn from the task with another seed:

# %%
params = {k: induction["data"][k] for k in ("length", "min_length", "n_symbols")}
fresh = get_task("induction")(torch.Generator().manual_seed(123), 40, "val", **params)
prompts = [ind_run.tokenizer.decode(t[1 : int(r.sum())]) for t, r in zip(fresh.tokens, fresh.real, strict=True)]  # fmt: skip
print(f"{len(prompts)} fresh prompts, e.g. {prompts[0]!r}")
ind = il.detect_heads(ind_run.model, prompts, "induction")
prev = il.detect_heads(ind_run.model, prompts, "previous_token")
((layer, head, score),) = ind.top(1)
print("induction score [layer, head]:\n", ind.mean().numpy().round(2))
print("previous-token score [layer, head]:\n", prev.mean().numpy().round(2))
print(f"top induction head L{layer}H{head} ({score:.2f}) in layer 1: {layer == 1}; "
      f"its previous-token score is lower: {score > float(prev.mean()[layer, head])}; "
      f"top previous-token head in layer 0: {prev.top(1)[0][0] == 0}")  # fmt: skip

# %% [markdown]
# The attention view shows the two heads on one prompt (the second copy is marked as the
# "idiom" span); the induction head's stripe sits one token right of the diagonal of
# the earlier copy.

# %%
text = prompts[0]
second = text.index(" ", len(text) // 2) + 1  # where the second copy starts
example = il.IdiomExample("induction-0", text, (second, len(text)))
il.attention_view(ind_run.model, example, [prev.top(1)[0][:2], (layer, head)])

# %% [markdown]
# ## Customising training without forking the trainer
#
# A training-time forward hook is a TransformerLens `(name, fn)` pair active in every
# training and evaluation forward. This one halves layer 0's attention scores before the
# softmax. A model trained with a hook computes with it, so reloading it needs the hook:

# %%
short = {**config, "train": {**config["train"], "steps": 40, "eval_every": 20}}


def cool_scores(scores, hook):
    return scores * 0.5


cool_hooks = [("blocks.0.attn.hook_attn_scores", cool_scores)]
cool = il.train_lm(short, out=out / "cool", hooks=cool_hooks)
try:
    il.verify_stable_load(cool.dir)
except ValueError as err:
    print("without the hook:", err)
print("with the hook: ok =", il.verify_stable_load(cool.dir, hooks=cool_hooks).ok)

# %% [markdown]
# A callback is a function called after every optimiser step, or an object with
# `on_step_start` / `on_before_optimizer_step` / `on_step_end`. `ctx.log(name, value)`
# adds a column to the history; `ctx.generator` is the run's own seeded generator (saved
# in checkpoints, so a resumed run draws the same numbers).


# %%
# freeze one randomly chosen block per step (frozen parameters get no update)
class FreezeOneBlock(Callback):
    def on_step_start(self, ctx):
        frozen = int(torch.randint(ctx.model.cfg.n_layers, (1,), generator=ctx.generator))
        for i, block in enumerate(ctx.model.blocks):
            block.requires_grad_(i != frozen)
        ctx.log("frozen_block", frozen)


# replace ~10% of the input tokens (not BOS) by symbol "0"; the targets stay
class CorruptInputs(Callback):
    def on_step_start(self, ctx):
        flip = (torch.rand(ctx.inputs.shape, generator=ctx.generator) < 0.1) & (ctx.inputs > 0)
        ctx.inputs = torch.where(flip, 1, ctx.inputs)
        ctx.log("corrupted", flip.float().mean())


def max_param(ctx):  # the largest parameter, every 10 steps
    if ctx.step % 10 == 0:
        ctx.log("max_param", max(p.detach().abs().max() for p in ctx.model.parameters()))


custom = il.train_lm(
    short, out=out / "custom", callbacks=[FreezeOneBlock(), CorruptInputs(), max_param]
)
h = custom.history
print(f"block frozen per step: { {int(b): n for b, n in h.frozen_block.value_counts().items()} }; "
      f"inputs corrupted: {h.corrupted.mean():.3f} on average")  # fmt: skip
h.dropna(subset=["max_param"])[["step", "max_param", "val_loss"]]

# %% [markdown]
# ## A sweep
#
# A list where a field takes one value is a sweep axis; the runs are the product of all
# axes, each in its own folder, with a summary table (also saved as `summary.csv`).
# Architecture knobs are config fields like any other. Rerunning into the same folder
# returns finished runs as they are (and resumes interrupted ones).

# %%
sweep_config = {
    **short,
    "model": {**short["model"], "positional_embedding_type": ["standard", "shortformer"]},
    "train": {**short["train"], "lr": [1e-3, 3e-3]},
}
sweep = il.train_lm(sweep_config, out=out / "sweep")
print(sorted(p.name for p in (out / "sweep").iterdir()))
sweep.summary[["run", "positional_embedding_type", "lr", "val_loss", "val_accuracy"]]

# %%
start = time.perf_counter()
again = il.train_lm(sweep_config, out=out / "sweep")
print(f"rerun of the finished sweep: {time.perf_counter() - start:.2f} s, "
      f"same val_loss: {again.summary.val_loss.tolist() == sweep.summary.val_loss.tolist()}")  # fmt: skip
