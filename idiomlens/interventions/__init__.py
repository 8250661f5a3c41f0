"""Interventions: ablation, activation and attribution patching, idiom awareness.

Specs say *where* (heads, positions) and *what* (zero, mean, resample); hooks compile them
for ``model.run_with_hooks``; runners evaluate METHODS.md metrics over a corpus.
"""

from .attribution_patching import (
    AttributionCheck,
    attribution_patch,
    attribution_patch_heads,
    check_attribution_patching,
)
from .hooks import ablation_hooks, compile_site, replacement_hooks
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
