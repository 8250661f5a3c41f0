"""Interventions: ablation, activation and attribution patching, idiom awareness.

Specs say *where* (heads, positions) and *what* (zero, mean, resample); hooks compile them
for ``model.run_with_hooks``; runners evaluate METHODS.md metrics over a corpus.
"""

from .hooks import ablation_hooks, compile_site, replacement_hooks
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
]
