"""Representations: extraction, projections, layer geometry and probes."""

from .extract import STORAGE_DTYPES, extract
from .pools import POOLS, SITES
from .result import Representations

__all__ = ["Representations", "extract", "SITES", "POOLS", "STORAGE_DTYPES"]
