"""Fine-tuning Hugging Face checkpoints (full, BitFit, LoRA, IA3) with ``transformers.Trainer``
and ``peft``, and comparing the checkpoints head by head.

- :func:`finetune` -> :class:`FinetuneResult` (``.final``, ``.checkpoints``, ``.history``);
- :class:`FinetuneConfig`: every option, validated;
- :data:`METHODS`, :data:`DEFAULT_TARGETS`: the methods and their default adapter modules;
- :func:`compare_checkpoints` -> :class:`CheckpointComparison`: a head-level analysis on
  the base and every checkpoint (through the run engine), differences vs the base with
  bootstrap CIs, and a figure across steps; :data:`COMPARISONS` is its registry.

Names are imported lazily, so ``idiomlens finetune --help`` does not import torch.
"""

from __future__ import annotations

from ..._lazy import lazy_exports

_EXPORTS = {
    "finetune": ".run",
    "FinetuneConfig": ".config",
    "FinetuneResult": ".result",
    "History": ".result",
    "RunFolderError": ".folder",
    "METHODS": ".methods",
    "DEFAULT_TARGETS": ".methods",
    "compare_checkpoints": ".compare",
    "CheckpointComparison": ".comparison_result",
    "Comparison": ".comparisons",
    "COMPARISONS": ".comparisons",
    "register_comparison": ".comparisons",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
