"""Runs at scale: run specs with content keys, an on-disk result store, a resumable
chunked executor, and sharding over processes (torchrun ranks or job-array shards)."""

from .distributed import DistContext, parse_shard
from .executor import plan_chunks, run_analysis
from .registry import Analysis, analysis_names, get_analysis, register_analysis
from .spec import RunSpec, canonicalize, model_identity, weights_fingerprint
from .store import ResultStore

__all__ = [
    "run_analysis",
    "plan_chunks",
    "RunSpec",
    "ResultStore",
    "Analysis",
    "register_analysis",
    "get_analysis",
    "analysis_names",
    "DistContext",
    "parse_shard",
    "canonicalize",
    "model_identity",
    "weights_fingerprint",
]
