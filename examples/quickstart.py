"""A first tour of idiomlens on the shipped demo model and corpus (offline, ~20 s on CPU).

Run: ``python examples/quickstart.py [OUT_DIR]``
"""

from __future__ import annotations

import sys

import idiomlens as il

out = sys.argv[1] if len(sys.argv) > 1 else "quickstart-out"

model = il.load_model("idiomlens-demo")  # or a TransformerLens name, a local HF / PEFT dir
corpus = il.demo_corpus("figurative")  # or il.load_epie(root, "formal"), il.load_corpus(path)

# Every head's idiom and literal score: features [example, layer, head, feature].
idiom = il.score_heads(model, corpus, kind="idiom", progress=False)
literal = il.score_heads(model, corpus, kind="literal", progress=False)
print("top idiom heads (layer, head, mean score):", idiom.top(3))
idiom.save(f"{out}/idiom")
assert il.HeadScores.load(f"{out}/idiom").ids == idiom.ids
idiom.plot(literal).write_html(f"{out}/idiom_vs_literal.html")

# The top heads' attention on one sentence, idiom tokens marked (circuitsvis, offline).
il.attention_view(model, corpus[0], idiom.top(3)).save(f"{out}/attention.html")

# Which heads attend within the idiom (pattern-based detection, TransformerLens's "mul").
detection = il.detect_heads(model, corpus, "idiom_to_idiom")
print("idiom->idiom attention per head:\n", detection.mean())

# Exact next-token direct logit attribution, averaged over idiom / literal targets.
dla = il.direct_logit_attribution(model, corpus, progress=False)
print("largest idiom-target components:", dla.top(5, group="idiom"))

# Zero-ablate heads and measure the last idiom word (METHODS.md metrics).
conditions = {il.head_label(*head): [head] for head in idiom.top(2).heads()}
conditions["layer 0"] = [(0, h) for h in range(model.cfg.n_heads)]
ablation = il.ablate_heads(model, corpus, conditions, kind="zero", progress=False)
print(ablation.summary())
