"""Causal validation of head rankings (METHODS.md, "Validating a head ranking").

- :func:`validate_heads` -> :class:`ValidationResult`: top-``k`` joint ablation against
  seeded random control sets, empirical p-value, bootstrap CI, Spearman of score vs
  single-head effect, precision@k;
- :func:`compare_rankings` -> :class:`ComparisonResult`: several rankings side by side;
- :class:`HeadRanking` / :func:`as_ranking`: any ranking as plain (cacheable) data.

Names are resolved lazily, so the CLI can import :mod:`idiomlens.validation.command`
without importing torch.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "validate_heads": "runner",
    "compare_rankings": "runner",
    "ValidationResult": "result",
    "ComparisonResult": "result",
    "HeadRanking": "ranking",
    "as_ranking": "ranking",
    "draw_controls": "ranking",
    "head_label": "ranking",
    "METRICS": "stats",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
