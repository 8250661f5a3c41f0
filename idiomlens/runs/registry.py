"""Analyses the run engine knows by name, resolved lazily (importing torch only when used).

An :class:`Analysis` is a function ``fn(model, corpus, **params) -> Result`` plus how the
executor may drive it: whether it can be computed on chunks of the corpus and merged
(per-example results), and which parameter receives the *full* corpus when chunks are
computed separately (ablation's ``reference``: mean/resample statistics must come from
the whole corpus, not from one chunk).

>>> get_analysis("score").target
'idiomlens.scoring:score_heads'
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Analysis", "register_analysis", "get_analysis", "analysis_names", "resolve_analysis"]


@dataclass(frozen=True, kw_only=True)
class Analysis:
    """A named analysis and how the executor drives it.

    Args:
        name: the registry / CLI name (part of the run key).
        target: the function, or ``"module:function"`` imported on first use.
        chunked: per-example result that may be computed on corpus chunks and merged with
            ``Result.concat``; ``False`` runs the whole corpus as one chunk.
        reference_param: parameter that receives the full corpus when it is not given.
        check_alignment: align the whole corpus before computing anything, so that an
            example that cannot be aligned (span, context length) fails the run at once
            (naming the example) rather than after some chunks.
    """

    name: str
    target: str | Callable[..., Any]
    chunked: bool = True
    reference_param: str | None = None
    check_alignment: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an analysis needs a non-empty name")
        if isinstance(self.target, str) and ":" not in self.target:
            raise ValueError(f"analysis {self.name!r}: target must be 'module:function'")

    def resolve(self) -> Callable[..., Any]:
        """The function itself (imports its module on first use)."""
        if callable(self.target):
            return self.target
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def accepts(self, param: str) -> bool:
        """Whether the function takes keyword ``param`` (or ``**kwargs``)."""
        try:
            sig = inspect.signature(self.resolve())
        except (TypeError, ValueError):
            return False
        kinds = {p.kind for p in sig.parameters.values()}
        return param in sig.parameters or inspect.Parameter.VAR_KEYWORD in kinds


_REGISTRY: dict[str, Analysis] = {}


def register_analysis(analysis: Analysis, *, overwrite: bool = False) -> Analysis:
    """Add ``analysis`` under its name (``overwrite=True`` to replace an entry)."""
    if analysis.name in _REGISTRY and not overwrite:
        raise ValueError(f"an analysis named {analysis.name!r} is already registered")
    _REGISTRY[analysis.name] = analysis
    return analysis


def get_analysis(name: str) -> Analysis:
    """The registered analysis called ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown analysis {name!r}; known: {sorted(_REGISTRY)}") from None


def analysis_names() -> list[str]:
    """Registered names, sorted."""
    return sorted(_REGISTRY)


def resolve_analysis(analysis: str | Analysis | Callable[..., Any]) -> Analysis:
    """Accept a registered name, an :class:`Analysis`, or a plain function.

    A plain function is chunked and named ``module:qualname`` (which enters the run key).
    """
    if isinstance(analysis, Analysis):
        return analysis
    if isinstance(analysis, str):
        return get_analysis(analysis)
    if callable(analysis):
        name = f"{analysis.__module__}:{getattr(analysis, '__qualname__', repr(analysis))}"
        return Analysis(name=name, target=analysis)
    raise TypeError(f"an analysis is a name, an Analysis or a function, not {analysis!r}")


for _entry in (
    Analysis(name="score", target="idiomlens.scoring:score_heads", check_alignment=True),
    Analysis(name="detect", target="idiomlens.scoring:detect_heads", check_alignment=True),
    Analysis(
        name="dla", target="idiomlens.attribution:direct_logit_attribution", check_alignment=True
    ),
    Analysis(
        name="ablate",
        target="idiomlens.interventions:ablate_heads",
        reference_param="reference",
        check_alignment=True,
    ),
    Analysis(
        name="awareness", target="idiomlens.interventions:idiom_awareness", check_alignment=True
    ),
    Analysis(name="patch", target="idiomlens.runs.tasks:patch_corpus", chunked=False),
    Analysis(
        name="validate",
        target="idiomlens.validation:validate_heads",
        reference_param="reference",
        check_alignment=True,
    ),
):
    register_analysis(_entry)
