"""Representations: extraction, projections, layer geometry and probes."""

from .result import Representations

__all__ = ["Representations"]
