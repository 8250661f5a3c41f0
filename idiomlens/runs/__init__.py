"""Runs at scale: run specs with content keys, an on-disk result store, a resumable
chunked executor, and sharding over processes (torchrun ranks or job-array shards).

Names are re-exported lazily, so ``idiomlens.runs.registry`` and
``idiomlens.runs.request`` (what ``idiomlens --help`` and a cache hit read) import
without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

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

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'idiomlens.runs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
