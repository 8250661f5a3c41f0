"""The small-transformer lab: train HookedTransformers from a config, on synthetic tasks
or text, as single runs or sweeps; sample from them and measure perplexity.

- :func:`train_lm` -> :class:`TrainedLM` (or a :class:`Sweep` of them), config layout in
  :mod:`.config`, customisation by forward hooks and :mod:`.callbacks`;
- :func:`register_task` and the built-in tasks in :mod:`.tasks`;
- :func:`verify_stable_load` reloads a saved run and checks it;
- :func:`sample` -> :class:`Sample`; :func:`perplexity` -> :class:`Perplexity`.
- :meth:`TrainedLM.embeddings` -> per-layer internal embeddings of texts (via
  :func:`idiomlens.extract`); attention views: :func:`idiomlens.attention_view`.
"""

from __future__ import annotations

from ..._lazy import lazy_exports

#: name -> submodule; imported on first use so that ``idiomlens train --help`` stays cheap.
_EXPORTS: dict[str, str] = {
    "train_lm": "api",
    "Sweep": "api",
    "TrainedLM": "result",
    "StableLoad": "result",
    "verify_stable_load": "result",
    "History": "history",
    "LabConfig": "config",
    "DataConfig": "config",
    "TokenizerConfig": "config",
    "TrainSettings": "config",
    "LabConfigError": "config",
    "Callback": "callbacks",
    "StepContext": "callbacks",
    "register_task": "tasks",
    "get_task": "tasks",
    "TASKS": "tasks",
    "TaskSamples": "tasks",
    "sample": "sampling",
    "Sample": "sampling",
    "perplexity": "perplexity",
    "Perplexity": "perplexity",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
