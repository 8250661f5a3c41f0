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
# # Representation geometry across layers, and probes
#
# Extract one vector per sentence at every layer, look at the point clouds (PCA),
# measure their geometry (intrinsic dimension, density clusters, label overlap) and
# train linear probes with control tasks, then compare the trained demo model with a
# randomly initialised copy of it. Runs offline on the shipped demo model and its
# 412-sentence corpus in about 15 seconds.

# %%
import torch

import idiomlens as il
from idiomlens.data import IdiomCorpus
from idiomlens.models import build_model

torch.set_num_threads(1)
model = il.load_model("idiomlens-demo")
corpus = il.demo_corpus()  # figurative, paraphrase and literal sentences, 34 idioms
print(
    f"{len(corpus)} sentences; splits:",
    {s: len(il.demo_corpus(s)) for s in ("figurative", "paraphrase", "literal")},
)

# %% [markdown]
# ## 1. Extract
#
# `site="norm"` is what each block's attention reads: the output of its first norm,
# with the norm's weight and bias (layer `n_layers` is the final norm). `pool="mean"`
# averages the sentence's real tokens, BOS excluded. Every scalar `meta` field of the
# corpus becomes a label (`label`, `split`, `idiom`, ...).

# %%
reps = il.extract(model, corpus, site="norm", pool="mean", progress=False)
print(reps)
reps.to_dataframe().head()

# %% [markdown]
# PCA of each layer (a slider moves through the layers), coloured by split:

# %%
frame = reps.project(1)
print(
    "explained variance, layer 1:", [round(v, 3) for v in frame.attrs["explained_variance_ratio"]]
)
reps.plot("split")

# %% [markdown]
# ## 2. Geometry per layer
#
# `geometry` builds one neighbour graph per layer and reads every metric from it:
# TwoNN and GRIDE intrinsic dimension, kNN density with Advanced Density Peaks
# clusters (and their adjusted Rand index with each label), and label overlap.
# Exact duplicate rows are dropped first (`n_duplicates`).

# %%
geo = il.geometry(reps, labels=["split", "idiom"], progress=False)
df = geo.to_dataframe()
df[df.metric != "id_gride"]

# %%
geo.plot()

# %% [markdown]
# The same metrics one at a time: GRIDE's intrinsic dimension at growing
# neighbourhood scales `n1` (small scales see noise, large ones the curvature),
# the ADP clusters of the final norm against the idioms, and the label overlap (how
# many of a sentence's nearest neighbours share its idiom).

# %%
il.intrinsic_dimension(reps, method="gride", layers=[2], progress=False)

# %%
il.density_clusters(reps, labels="idiom", layers=[2], progress=False)

# %% [markdown]
# One cluster, ARI 0: with about 12 sentences per idiom and `k = 16` neighbours, no
# idiom is a density peak of its own. Smaller neighbourhoods and a lower significance
# split the cloud a little, still not along the idioms:

# %%
il.density_clusters(reps, labels="idiom", Z=0.5, k=8, id_scale=4, progress=False)

# %%
il.label_overlap(reps, labels="idiom", progress=False)

# %% [markdown]
# ## 3. Probes with a control task
#
# `train_probes` fits an L2 multinomial logistic regression per layer (scikit-learn's
# objective, `C = 1`) on a seeded stratified split, all layers as one batched problem,
# and the same probe on control labels (the labels shuffled). Selectivity = accuracy
# − control accuracy. Which of the 34 idioms is a sentence about?

# %%
idiom_probe = il.train_probes(reps, "idiom", progress=False)
idiom_probe.to_dataframe()[
    ["layer", "accuracy", "control_accuracy", "selectivity", "majority_accuracy"]
]

# %%
idiom_probe.plot()

# %% [markdown]
# The idiom is linearly decodable at every layer (the control task is at chance), even
# though density peaks did not find it: the classes are separable without being
# separated by gaps in density. Label overlap sits in between (0.63–0.68).

# %% [markdown]
# A harder question: does the model separate the figurative and the literal use of
# the *same* phrase? Sentences of the 24 idioms that have a literal reading, vectors
# pooled over the idiom span:

# %%
literal = il.demo_corpus("literal")
with_literal = {x.meta["idiom"] for x in literal}
same_phrase = IdiomCorpus(
    [x for x in il.demo_corpus("figurative") if x.meta["idiom"] in with_literal] + list(literal)
)
span_reps = il.extract(model, same_phrase, site="norm", pool="idiom", progress=False)
sense_probe = il.train_probes(span_reps, "label", progress=False)
sense_probe.to_dataframe()[
    ["layer", "accuracy", "control_accuracy", "selectivity", "majority_accuracy"]
]

# %% [markdown]
# No: the sense probe stays at or below the majority baseline and its selectivity is
# about zero. That fits what the demo shows about this model: it completes each idiom as
# a fixed phrase whatever its sense (docs: "The embedded demo").

# %% [markdown]
# ## 4. Two conditions: the trained model vs a random copy
#
# `build_model` gives a freshly initialised model of the same config (seeded locally).
# The same corpus gives the same split, so `compare_probes` runs a paired bootstrap
# over test sentences for `accuracy(demo) − accuracy(random)` per layer.

# %%
random_model = build_model(model.cfg, seed=0, tokenizer=model.tokenizer).eval()
random_reps = il.extract(random_model, corpus, site="norm", pool="mean", progress=False)
random_probe = il.train_probes(random_reps, "idiom", progress=False)
comparison = il.compare_probes(random_probe, idiom_probe, names=("random", "demo"))
comparison.to_dataframe()[
    ["layer", "accuracy_random", "accuracy_demo", "diff", "ci_low", "ci_high", "p_value"]
]

# %%
comparison.plot()

# %% [markdown]
# At layer 0 (the embeddings' norm) a random embedding table serves a bag-of-tokens
# probe almost as well; with depth the random model mixes the idiom away while the
# trained one keeps it, and the paired 95% CI excludes 0 at every layer.

# %% [markdown]
# Do the two models agree on which sentences are neighbours? The neighbourhood overlap
# is 1 for identical spaces and about `k / N` = 10 / 412 = 0.02 for unrelated ones; at
# the embeddings (layer 0) the two share a third of their neighbours, deeper about 10%:

# %%
il.neighbourhood_overlap(reps, random_reps, k=10, progress=False)

# %% [markdown]
# And the random model's geometry for comparison:

# %%
il.geometry(random_reps, labels=["split", "idiom"], progress=False).plot(
    title="Geometry per layer (random copy)"
)
