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
# # Fine-tune with LoRA and BitFit, then compare the checkpoints with the base
#
# `finetune` trains a local Hugging Face checkpoint with the `transformers` Trainer
# (and `peft` for adapters), saving log-spaced checkpoints that `load_model` reads;
# `compare_checkpoints` runs one head-level analysis on the base and on every checkpoint
# and reports, per head, how far each checkpoint moved from the base, with bootstrap
# CIs. Here the base is a tiny random GPT-2 saved on the fly, so the whole notebook runs
# offline in seconds; with a real model only the folder changes.

# %%
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd
import torch
import transformers

import idiomlens as il

torch.set_num_threads(1)
transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bars per load
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # peft vs transformers 5

work = Path(tempfile.mkdtemp(prefix="idiomlens-finetune-"))
base = il.tiny_hf_checkpoint(work / "base", family="gpt2", n_layers=2, d_model=32, n_heads=4)
corpus = il.demo_corpus("figurative")[:64]
print(f"base checkpoint: {sorted(p.name for p in base.iterdir())}")
print(f"{len(corpus)} figurative sentences, e.g. {corpus[0].text!r}")

# %% [markdown]
# ## Two runs: LoRA and BitFit
#
# LoRA wraps GPT-2's `c_attn`, `c_proj` and `c_fc` with rank-8 adapters and freezes
# the base; BitFit trains only the bias terms. Both use the language-modelling objective
# on the sentences, hold out a quarter of them (`eval_fraction`) and evaluate every 10
# steps. `checkpoints=3` asks for three log-spaced saves, plus step 0 (the model before
# any update) and the last step. The learning rate is far above the usual defaults so
# that 40 steps visibly move a random model.

# %%
common = dict(
    max_steps=40, batch_size=8, lr=1e-2, checkpoints=3, max_length=48,
    eval_fraction=0.25, eval_every=10, seed=0, progress=False, device="cpu",
)  # fmt: skip
runs = {}
for method in ("lora", "bitfit"):
    start = time.perf_counter()
    runs[method] = il.finetune(base, corpus, method=method, out=work / method, **common)
    print(f"{method}: trained in {time.perf_counter() - start:.1f} s")

pd.DataFrame(
    {
        "trainable": [r.trainable_params for r in runs.values()],
        "total": [r.total_params for r in runs.values()],
        "trainable %": [100 * r.trainable_params / r.total_params for r in runs.values()],
        "checkpoint steps": [r.steps for r in runs.values()],
        "train / held out": [f"{r.n_train} / {r.n_eval}" for r in runs.values()],
    },
    index=list(runs),
).round(2)

# %% [markdown]
# For LoRA, `total` includes the adapter's own weights (the base's are frozen). Every
# Trainer log record is in `OUT/history.jsonl`; `.history` reads it as a DataFrame whose
# `.plot()` draws the training and held-out loss:

# %%
lora = runs["lora"]
print(lora.history[["step", "loss", "eval_loss", "learning_rate"]].dropna(how="all").tail(3))
lora.history.plot(title="LoRA: training and held-out loss")

# %%
runs["bitfit"].history.plot(title="BitFit: training and held-out loss")

# %% [markdown]
# The run folder is keyed by its inputs: calling `finetune` again with the same
# arguments returns the finished run without training (and an interrupted run would
# resume from its last whole checkpoint). A different option with the same `out` is
# refused, so a folder never mixes two runs.

# %%
start = time.perf_counter()
again = il.finetune(base, corpus, method="lora", out=work / "lora", **common)
print(
    f"second call: {time.perf_counter() - start:.3f} s, same folders: {again.checkpoints == lora.checkpoints}"
)
try:
    il.finetune(base, corpus, method="lora", out=work / "lora", **{**common, "lr": 1e-3})
except ValueError as err:  # a RunFolderError listing the differing settings
    print(f"{type(err).__name__}: ...{str(err).rsplit(');', 1)[-1]}")


# %% [markdown]
# ## Load the fine-tuned models
#
# `result.final` (and every `result.checkpoints` folder) is an ordinary folder for
# `load_model`: an adapter folder names its base in `adapter_config.json` and is merged
# into a `HookedTransformer` on load. On the 64 sentences (48 of them trained on),
# perplexity drops below the random base's (about the vocabulary size, 300) for both
# methods. A random 2-layer model learns little in 40 steps (mostly which tokens are
# frequent, so the held-out loss above barely moves): the point here is the workflow.

# %%
texts = [ex.text for ex in corpus]
models = {"base": il.load_model(base)} | {m: il.load_model(r.final) for m, r in runs.items()}
pd.DataFrame(
    {"perplexity": {name: il.perplexity(m, texts).mean for name, m in models.items()}}
).round(1)

# %% [markdown]
# ## Compare the checkpoints with the base, head by head
#
# `compare_checkpoints(base, run, corpus, analysis="score")` computes the idiom score
# of every head (`score_heads`) for the base and for each checkpoint, pairs the
# sentences by id, and reports the mean per-head difference `checkpoint - base` with a
# 95% bootstrap CI over sentences. Each model's analysis is cached under `out`, so a
# second call is a lookup. `base=None` takes the run's own source.

# %%
sub = corpus[:32]
scores = il.compare_checkpoints(
    None, lora, sub, analysis="score", out=work / "compare", n_boot=500, progress=False
)
frame = scores.to_dataframe()
at_zero = frame[frame.step == 0]["diff"].abs().max()
print(f"checkpoint-0 vs base, largest |diff|: {at_zero:.1e} (LoRA starts as the base: B = 0)")
print("heads that moved most by the last step:", scores.top(3, by="change"))
frame[frame.step == frame.step.max()].sort_values("diff", key=abs, ascending=False).head(4)

# %% [markdown]
# `.plot()` draws each of the base's top heads' mean idiom score across the checkpoint
# steps; `show="stat"` draws the difference with its CI band instead.

# %%
scores.plot(k=4)

# %%
scores.plot(units=scores.top(3, by="change"), show="stat")

# %% [markdown]
# The same call with `analysis="dla"` compares each head's direct logit attribution to
# the next token, averaged over the positions whose next token is part of the idiom
# (the `idiom` group of `direct_logit_attribution`), here for the BitFit run:

# %%
dla = il.compare_checkpoints(
    None, runs["bitfit"], sub, analysis="dla", out=work / "compare", n_boot=500, progress=False
)
dla.plot(units=dla.top(4, by="change"), show="stat")
