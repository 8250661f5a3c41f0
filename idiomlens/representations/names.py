"""The names of sites and pools (no torch import: the CLI builds its choices from these)."""

from __future__ import annotations

__all__ = ["SITES", "POOLS", "SPAN_POOLS"]

#: Site name -> hook point template (``norm`` is special-cased, see :func:`~.pools.site_hook`).
SITES: dict[str, str] = {
    "resid_pre": "blocks.{l}.hook_resid_pre",
    "resid_mid": "blocks.{l}.hook_resid_mid",
    "resid_post": "blocks.{l}.hook_resid_post",
    "norm": "blocks.{l}.ln1.hook_normalized",
    "attn_out": "blocks.{l}.hook_attn_out",
    "mlp_out": "blocks.{l}.hook_mlp_out",
}

#: Pool name -> what one row is.
POOLS: dict[str, str] = {
    "last": "the last real token (T-1)",
    "idiom_last": "the idiom's last token (e)",
    "mean": "the mean over p0..T-1 (BOS excluded)",
    "idiom": "the mean over the idiom span I",
    "literal": "the mean over the literal set L",
    "tokens": "every token p0..T-1 as its own row",
}

#: Pools that need a marked idiom span (not available for plain text corpora).
SPAN_POOLS = ("idiom_last", "idiom", "literal")
