"""The forward-collect engine: one primitive under every analysis.

- :func:`prepare` aligns a corpus once (or checks an aligned one);
- :class:`Collector` / :class:`Site` describe what an analysis computes per batch;
- :func:`collect` / :func:`iter_collect` stream token-budgeted padded batches through
  the model, stop each forward after the last hook needed, and return per-example
  outputs in corpus order (OOM back-off and progress bars included);
- :func:`forward` is the single hooked forward pass, also for analyses that need
  several passes per batch;
- :func:`run_meta` builds every result's provenance ``meta``.
"""

from .collect import (
    DEFAULT_BATCH_TOKENS,
    Collected,
    Collector,
    Site,
    collect,
    is_out_of_memory,
    iter_collect,
    plan_groups,
    site_hooks,
)
from .corpus import check_layers, prepare
from .forward import capture, forward, hook_order, last_hook, model_device
from .provenance import corpus_hash, model_meta, run_meta

__all__ = [
    "DEFAULT_BATCH_TOKENS",
    "Collected",
    "Collector",
    "Site",
    "collect",
    "iter_collect",
    "site_hooks",
    "plan_groups",
    "is_out_of_memory",
    "prepare",
    "check_layers",
    "forward",
    "capture",
    "hook_order",
    "last_hook",
    "model_device",
    "corpus_hash",
    "model_meta",
    "run_meta",
]
