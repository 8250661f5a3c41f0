"""Model loading (the only place that constructs a model), hook sites and tiny test models."""

from .load import load_model
from .sites import attn_out_hook, pattern_hook, resid_pre_hook, z_hook
from .tiny import tiny_model, tiny_tokenizer

__all__ = [
    "load_model",
    "tiny_model",
    "tiny_tokenizer",
    "z_hook",
    "pattern_hook",
    "resid_pre_hook",
    "attn_out_hook",
]
