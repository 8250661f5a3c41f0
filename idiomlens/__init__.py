"""idiomlens: mechanistic interpretability of idioms in transformer language models.

The public API is re-exported here lazily, so ``import idiomlens`` is cheap and has no
side effects; the first use of a name imports its module (and torch).

>>> import idiomlens
>>> model = idiomlens.tiny_model()
>>> corpus = idiomlens.IdiomCorpus([idiomlens.IdiomExample("a", "He spilled the beans.", (3, 20))])
>>> [al] = idiomlens.align(corpus, model)
>>> al.span
(2, 9)
"""

from __future__ import annotations

from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # models
    "load_model": "idiomlens.models",
    "tiny_model": "idiomlens.models",
    "tiny_tokenizer": "idiomlens.models",
    "tiny_hf_checkpoint": "idiomlens.models",
    "model_info": "idiomlens.models",
    # data
    "IdiomExample": "idiomlens.data",
    "IdiomCorpus": "idiomlens.data",
    "AlignedExample": "idiomlens.data",
    "AlignmentError": "idiomlens.data",
    "Batch": "idiomlens.data",
    "align": "idiomlens.data",
    "iter_batches": "idiomlens.data",
    "load_epie": "idiomlens.data",
    "load_corpus": "idiomlens.data",
    "demo_corpus": "idiomlens.data",
    "TextExample": "idiomlens.data",
    "TextCorpus": "idiomlens.data",
    "load_texts": "idiomlens.data",
    "few_shot_prompts": "idiomlens.data",
    # scoring
    "score_heads": "idiomlens.scoring",
    "score_heads_both": "idiomlens.scoring",
    "HeadScores": "idiomlens.scoring",
    "detect_heads": "idiomlens.scoring",
    "HeadDetection": "idiomlens.scoring",
    "compare_scores": "idiomlens.scoring",
    "ScoreComparison": "idiomlens.scoring",
    # attribution
    "direct_logit_attribution": "idiomlens.attribution",
    "DLAResult": "idiomlens.attribution",
    "logit_diff_attribution": "idiomlens.attribution",
    # interventions
    "ablation_hooks": "idiomlens.interventions",
    "ablate_heads": "idiomlens.interventions",
    "AblationResult": "idiomlens.interventions",
    "patch_heads": "idiomlens.interventions",
    "PatchingResult": "idiomlens.interventions",
    "attribution_patch_heads": "idiomlens.interventions",
    "make_patching_pairs": "idiomlens.interventions",
    "idiom_awareness": "idiomlens.interventions",
    "AwarenessResult": "idiomlens.interventions",
    # results: head labels and rankings
    "head_label": "idiomlens._heads",
    "parse_head": "idiomlens._heads",
    "Ranking": "idiomlens._heads",
    "HeadRank": "idiomlens._heads",
    "ComponentRank": "idiomlens._heads",
    # training
    "finetune": "idiomlens.training.finetune",
    "FinetuneResult": "idiomlens.training.finetune",
    "compare_checkpoints": "idiomlens.training.finetune",
    # validation
    "validate_heads": "idiomlens.validation",
    "compare_rankings": "idiomlens.validation",
    "ValidationResult": "idiomlens.validation",
    "HeadRanking": "idiomlens.validation",
    # follow-up analyses
    "logit_lens": "idiomlens.attribution.logit_lens",
    "dla_by_layer": "idiomlens.attribution.by_layer",
    "replace_last_word": "idiomlens.interventions.replacement",
    "pattern_similarity": "idiomlens.scoring.pattern_similarity",
    # representations: geometry
    "intrinsic_dimension": "idiomlens.representations.geometry",
    "neighbourhood_overlap": "idiomlens.representations.geometry",
    "label_overlap": "idiomlens.representations.geometry",
    "density_clusters": "idiomlens.representations.geometry",
    "geometry": "idiomlens.representations.geometry",
    "GeometryResult": "idiomlens.representations.geometry",
    "GeometryConfig": "idiomlens.representations.geometry",
    # representations
    "extract": "idiomlens.representations",
    "Representations": "idiomlens.representations",
    # training: the small-transformer lab
    "train_lm": "idiomlens.training.lab",
    "TrainedLM": "idiomlens.training.lab",
    "sample": "idiomlens.training.lab",
    "Sample": "idiomlens.training.lab",
    "perplexity": "idiomlens.training.lab",
    "register_task": "idiomlens.training.lab",
    "verify_stable_load": "idiomlens.training.lab",
    # representations: probes
    "train_probes": "idiomlens.representations.probes",
    "ProbeResult": "idiomlens.representations.probes",
    "compare_probes": "idiomlens.representations.probes",
    "probe_profile": "idiomlens.representations.probes",
    # runs
    "run_analysis": "idiomlens.runs",
    # viz
    "attention_view": "idiomlens.viz.attention",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, extra=["__version__"])
