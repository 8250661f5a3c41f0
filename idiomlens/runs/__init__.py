"""Runs at scale: run specs with content keys, an on-disk result store, a resumable
chunked executor, and sharding over processes (torchrun ranks or job-array shards).

Names are re-exported lazily, so ``idiomlens.runs.registry`` and
``idiomlens.runs.request`` (what ``idiomlens --help`` and a cache hit read) import
without torch.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "run_analysis": "idiomlens.runs.executor",
    "plan_chunks": "idiomlens.runs.executor",
    "RunSpec": "idiomlens.runs.spec",
    "canonicalize": "idiomlens.runs.spec",
    "model_identity": "idiomlens.runs.spec",
    "weights_fingerprint": "idiomlens.runs.spec",
    "ResultStore": "idiomlens.runs.store",
    "Analysis": "idiomlens.runs.registry",
    "Option": "idiomlens.runs.registry",
    "register_analysis": "idiomlens.runs.registry",
    "get_analysis": "idiomlens.runs.registry",
    "analysis_names": "idiomlens.runs.registry",
    "DistContext": "idiomlens.runs.distributed",
    "parse_shard": "idiomlens.runs.distributed",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
