"""Canonical TransformerLens hook names, in one place."""

from __future__ import annotations

__all__ = [
    "z_hook",
    "pattern_hook",
    "resid_pre_hook",
    "resid_post_hook",
    "attn_out_hook",
    "mlp_out_hook",
    "ln_final_scale_hook",
]


def z_hook(layer: int) -> str:
    """``blocks.{layer}.attn.hook_z``: per-head values ``[batch, pos, head_index, d_head]``."""
    return f"blocks.{layer}.attn.hook_z"


def pattern_hook(layer: int) -> str:
    """``blocks.{layer}.attn.hook_pattern``: ``[batch, head_index, query_pos, key_pos]``."""
    return f"blocks.{layer}.attn.hook_pattern"


def resid_pre_hook(layer: int) -> str:
    """``blocks.{layer}.hook_resid_pre``: the residual stream entering ``layer``."""
    return f"blocks.{layer}.hook_resid_pre"


def resid_post_hook(layer: int) -> str:
    """``blocks.{layer}.hook_resid_post``."""
    return f"blocks.{layer}.hook_resid_post"


def attn_out_hook(layer: int) -> str:
    """``blocks.{layer}.hook_attn_out``: the attention block's output."""
    return f"blocks.{layer}.hook_attn_out"


def mlp_out_hook(layer: int) -> str:
    """``blocks.{layer}.hook_mlp_out``."""
    return f"blocks.{layer}.hook_mlp_out"


def ln_final_scale_hook() -> str:
    """``ln_final.hook_scale``: the final LayerNorm/RMSNorm scale ``[batch, pos, 1]``."""
    return "ln_final.hook_scale"
