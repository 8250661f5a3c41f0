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
# # Find the idiom heads of a model and verify them causally
#
# Three observational rankings of the heads — the combined idiom score, idiom→idiom
# attention and direct logit attribution — and then the causal check: ablate each
# ranking's top heads together and compare with random head sets of the same size.
# Runs offline on the shipped demo model (2 layers × 4 heads) in about 20 seconds.

# %%
import torch

import idiomlens as il
from idiomlens.validation import as_ranking

torch.set_num_threads(1)
model = il.load_model("idiomlens-demo")
figurative = il.demo_corpus("figurative")
print(
    f"{len(figurative)} figurative sentences; {model.cfg.n_layers} layers x {model.cfg.n_heads} heads"
)

# %% [markdown]
# ## 1. The combined idiom score
#
# `score_heads_both` computes the idiom and literal scores (five attention features
# each, combined as `sigmoid(sum)`) from one forward pass.

# %%
scores = il.score_heads_both(model, figurative, progress=False)
idiom, literal = scores["idiom"], scores["literal"]
idiom.top(4)

# %%
idiom.plot()

# %% [markdown]
# Every head scores between 0.65 and 0.69: the combined score hardly separates them.
# Idiom against literal score per head:

# %%
idiom.plot(literal)

# %% [markdown]
# ## 2. Idiom→idiom attention
#
# `detect_heads` with the `idiom_to_idiom` mask measures the share of attention that
# idiom tokens put on earlier idiom tokens (rows without an idiom query left out, BOS
# and the current token excluded).

# %%
detection = il.detect_heads(
    model, figurative, "idiom_to_idiom", rows="marked", exclude_bos=True, exclude_current_token=True
)
detection.top(4)

# %%
detection.plot()

# %% [markdown]
# ## 3. Direct logit attribution to the next idiom token
#
# The logit of each next token split into embeddings, heads, MLPs and biases, averaged
# over the positions whose target is an idiom token (group `idiom`).

# %%
dla = il.direct_logit_attribution(model, figurative, progress=False)
print(f"largest reconstruction error: {dla.max_error():.1e}")
il.dla_by_layer(dla)

# %%
dla.plot("idiom")

# %% [markdown]
# ## 4. Validate the rankings causally
#
# `compare_rankings` zero-ablates each ranking's top `k` heads together, and 200 seeded
# random sets of `k` heads drawn from the others, in one ablation run, and reports the
# drop in log P(last idiom word): the top-`k` effect with a bootstrap CI, the control
# distribution, the empirical p-value and the Spearman correlation of the ranking's
# score with each head's single-head effect. The combined score is tried in its
# METHODS form (`sigmoid_sum`) and in the two calibrated combinations (`zscore`, `rank`).

# %%
rankings = {
    **{
        f"idiom score ({c})": as_ranking(idiom, combine=c)
        for c in ("sigmoid_sum", "zscore", "rank")
    },
    "idiom_to_idiom detection": detection,
    "DLA (idiom)": as_ranking(dla, group="idiom"),
}
comparison = il.compare_rankings(model, figurative, rankings, k=2, controls=200, progress=False)
table = comparison.to_dataframe()
table[
    [
        "ranking",
        "top_heads",
        "effect",
        "ci_low",
        "ci_high",
        "control_mean",
        "p_value",
        "distinct_p_value",
        "spearman",
        "passed",
    ]
]

# %%
comparison.plot()

# %% [markdown]
# One ranking in detail, with `validate_heads`: the control histogram with the top-2
# effect (line and CI band), and every head's ranking score against its own
# single-head ablation effect.

# %%
result = il.validate_heads(model, figurative, detection, k=2, controls=200, progress=False)
lo, hi = result.ci
print(
    f"{result.top_heads}: effect {result.effect:.2f} nats [{lo:.2f}, {hi:.2f}], "
    f"p = {result.p_value:.4f}, Spearman {result.spearman:.2f}"
)
result.plot()

# %% [markdown]
# ## Why the combined score fails and the other two pass
#
# Detection and DLA both put **L0H0 and L0H1** on top; ablating the pair costs about
# 2.9 nats on the last idiom word, far above every random pair (mean about 0.01 nats).
# The combined idiom score, in every combination, puts **L1H1 and L1H0** on top, whose
# joint ablation changes almost nothing (p = 1). The score rewards attention that is
# concentrated on the idiom span from *everywhere* in the sentence, while this small
# model's idiom heads are local, previous-token-like heads *inside* the idiom: at the
# position before the last idiom word they read the earlier idiom words, and layer 0's
# MLP (the largest DLA component above) maps them to the continuation. Calibrating the
# features (`zscore`, `rank`) does not help here: the heads differ little on every
# feature. Its Spearman correlation with the causal effect is even negative.
#
# Read the p-value with the model's size in mind. With 8 heads and `k = 2` there are
# only C(6, 2) = 15 distinct control pairs; 200 draws repeat them, so the reported
# p = 1/201 counts repeats. Counting each distinct set once (`distinct_p_value`) the
# best attainable p is 1/16 = 0.0625: against *every possible* pair the test cannot
# reach 0.05 on this model. The effect size (2.9 nats against a control maximum of
# 0.02) is the stronger evidence here; on models with hundreds of heads the two
# p-values agree.

# %% [markdown]
# ## 5. Follow-up analyses
#
# The logit lens of the last idiom word: the word is already predicted after layer 0.

# %%
lens = il.logit_lens(model, figurative, progress=False)
lens.summary()

# %%
lens.plot()

# %% [markdown]
# Replacing the last idiom word by its paraphrase's word (the demo corpus links
# `para-N` to `fig-N`) raises the sentence loss by about 3 nats per token:

# %%
full = il.demo_corpus()
replaced = il.replace_last_word(model, full, replacement="paraphrase", progress=False)
replaced.summary()

# %%
replaced.plot()

# %% [markdown]
# Attention-pattern similarity between a figurative sentence and its equal-length
# paraphrase, per head (BOS column dropped):

# %%
similarity = il.pattern_similarity(
    model,
    full,
    exclude_bos=True,
    paraphrase_id=lambda i: i.replace("fig-", "para-"),
    progress=False,
)
print(f"{len(similarity.ids)} length-matched pairs")
similarity.plot()
