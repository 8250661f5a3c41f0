"""Head scoring: idiom / literal scores (METHODS.md), pattern-based head detection and
comparisons of two scorings.

- :func:`score_heads` -> :class:`HeadScores` (features computed inside forward hooks);
  :func:`score_heads_both` -> both kinds from one forward pass;
- :func:`detect_heads` -> :class:`HeadDetection` (TransformerLens ``"mul"`` measure,
  every prompt counted, idiom-aware masks);
- :func:`compare_scores` -> per-head differences, bootstrap CIs and permutation p-values.

The pure feature functions live in :mod:`idiomlens.scoring.features`.
"""

from .compare import ScoreComparison, compare_scores
from .detect import HeadDetection, detect_heads
from .result import HeadScores
from .runner import score_heads, score_heads_both

__all__ = [
    "score_heads",
    "score_heads_both",
    "HeadScores",
    "detect_heads",
    "HeadDetection",
    "compare_scores",
    "ScoreComparison",
]
