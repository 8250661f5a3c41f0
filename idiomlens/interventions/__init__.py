"""Interventions: ablation, activation and attribution patching, idiom awareness.

Specs say *where* (heads, positions) and *what* (zero, mean, resample); hooks compile them
for ``model.run_with_hooks``; runners evaluate METHODS.md metrics over a corpus.
"""

from .ablation import POSITIONS, ablate_heads, mean_head_z, normalize_conditions, resample_donors
from .ablation_result import AblationResult
from .attribution_patching import (
    AttributionCheck,
    attribution_patch,
    attribution_patch_heads,
    check_attribution_patching,
)
from .awareness import AwarenessResult, idiom_awareness
from .hooks import ablation_hooks, compile_site, replacement_hooks
from .metrics import last_word_tokens, word_metrics
from .pairs import PatchingPairs, make_patching_pairs
from .patching import (
    PATCH_KINDS,
    patch,
    patch_attn_out,
    patch_heads,
    patch_mlp_out,
    patch_resid_pre,
)
from .patching_result import PatchingResult
from .specs import KINDS, HeadSite, MeanValue, ResampleValue, ZeroValue, make_value

__all__ = [
    "ablate_heads",
    "AblationResult",
    "mean_head_z",
    "resample_donors",
    "normalize_conditions",
    "POSITIONS",
    "idiom_awareness",
    "AwarenessResult",
    "last_word_tokens",
    "word_metrics",
    "ablation_hooks",
    "compile_site",
    "replacement_hooks",
    "HeadSite",
    "ZeroValue",
    "MeanValue",
    "ResampleValue",
    "KINDS",
    "make_value",
    "patch",
    "patch_heads",
    "patch_resid_pre",
    "patch_attn_out",
    "patch_mlp_out",
    "PATCH_KINDS",
    "PatchingResult",
    "attribution_patch",
    "attribution_patch_heads",
    "check_attribution_patching",
    "AttributionCheck",
    "make_patching_pairs",
    "PatchingPairs",
]
