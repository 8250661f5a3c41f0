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

import importlib
from typing import Any

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

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'idiomlens.validation' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
