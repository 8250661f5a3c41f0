"""Analyses the run engine and the CLI know by name, resolved lazily.

An :class:`Analysis` is a function ``fn(model, corpus, **params) -> Result`` plus how the
executor may drive it: whether it can be computed on chunks of the corpus and merged
(per-example results), and which parameter receives the *full* corpus when chunks are
computed separately (ablation's ``reference``: mean/resample statistics must come from
the whole corpus, not from one chunk). It also declares its command-line face: a help
line and :class:`Option` entries, from which ``idiomlens <name>`` is built
(:mod:`idiomlens.cli`), so adding an analysis to the CLI is one entry here.

This module imports neither torch nor the analyses: ``idiomlens --help`` reads it. The
option choices are therefore spelled here, and ``tests/cli/test_registry.py`` checks
that they equal the library's own tables (``scoring.detect.MASKS``,
``scoring.features.KINDS``, ``interventions.specs.KINDS``, ...).

>>> get_analysis("score").target
'idiomlens.scoring:score_heads'
>>> [o.flags[0] for o in get_analysis("score").options]
['--kind', '--layers']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._heads import head_label, parse_head

__all__ = [
    "Analysis",
    "Option",
    "register_analysis",
    "get_analysis",
    "analysis_names",
    "resolve_analysis",
    "resolve_target",
]


def resolve_target(target: str | Callable[..., Any]) -> Callable[..., Any]:
    """A callable, or ``"module:attr"`` imported on first use."""
    if callable(target):
        return target
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True, kw_only=True)
class Option:
    """One command-line option of an analysis.

    Args:
        flags: the option strings (``("--kind",)``).
        kwargs: ``argparse`` keywords (``choices``, ``default``, ``type``, ``nargs``,
            ``action``, ``help``, ``metavar``, ``required``). A ``type`` may be any
            function that raises ``ValueError`` on bad text; its message is shown.
        param: the analysis parameter the value fills (default: the flag's name,
            ``--exclude-bos`` -> ``exclude_bos``); ``None``: the option is only read by
            the analysis's ``cli_params`` builder. A ``None`` value is left out of the
            parameters, so the analysis default applies (and the run key is unchanged).
        convert: applied to a non-``None`` value before it becomes the parameter.
    """

    flags: tuple[str, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    param: str | None = ""
    convert: Callable[[Any], Any] | None = None

    @property
    def dest(self) -> str:
        """The ``argparse`` attribute name."""
        return self.flags[0].lstrip("-").replace("-", "_")

    @property
    def param_name(self) -> str | None:
        return self.dest if self.param == "" else self.param


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
        help: the one-line help of ``idiomlens NAME`` (empty: no subcommand).
        options: the subcommand's own options (the run options ``--model``,
            ``--corpus``, ``--out``, ... are shared by every analysis).
        cli_params: ``params_builder(args, params) -> params`` (or ``"module:function"``)
            for parameters that combine several options; raises ``ValueError`` on bad
            input (shown as a one-line CLI error).
    """

    name: str
    target: str | Callable[..., Any]
    chunked: bool = True
    reference_param: str | None = None
    check_alignment: bool = False
    help: str = ""
    options: tuple[Option, ...] = ()
    cli_params: str | Callable[..., dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an analysis needs a non-empty name")
        if isinstance(self.target, str) and ":" not in self.target:
            raise ValueError(f"analysis {self.name!r}: target must be 'module:function'")

    def resolve(self) -> Callable[..., Any]:
        """The function itself (imports its module on first use)."""
        return resolve_target(self.target)

    def params_from_args(self, args: Any) -> dict[str, Any]:
        """The analysis parameters given by parsed CLI ``args`` (JSON data)."""
        params: dict[str, Any] = {}
        for option in self.options:
            name, value = option.param_name, getattr(args, option.dest, None)
            if name is None or value is None:
                continue
            params[name] = option.convert(value) if option.convert else value
        if self.cli_params is not None:
            params = resolve_target(self.cli_params)(args, params)
        return params

    def accepts(self, param: str) -> bool:
        """Whether the function takes keyword ``param`` (or ``**kwargs``)."""
        import inspect

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


# ---- the built-in analyses -------------------------------------------------------------

#: Choices the CLI offers; equal to the library's tables (checked by tests/cli).
SCORE_KINDS = ("idiom", "literal")  # scoring.features.KINDS
DETECT_PATTERNS = (  # scoring.detect.MASKS
    "previous_token",
    "duplicate_token",
    "induction",
    "idiom_to_idiom",
    "literal_to_idiom",
    "idiom_to_literal",
)
DETECT_ROWS = ("all", "marked")  # detect_heads(rows=...)
ABLATION_KINDS = ("zero", "mean", "resample")  # interventions.specs.KINDS
ABLATION_POSITIONS = ("all", "idiom", "literal")  # interventions.ablation.POSITIONS
PAIR_MODES = ("paraphrase", "other_idiom")  # interventions.pairs.MODES


def _sorted_unique(values: list[int]) -> list[int]:
    return sorted(set(values))


def parse_head_group(text: str) -> tuple[str, list[tuple[int, int]]]:
    """``"NAME=L.H,L.H"`` -> ``(name, [(layer, head), ...])``.

    >>> parse_head_group("pair=0.1,L1H1")
    ('pair', [(0, 1), (1, 1)])
    """
    name, sep, heads = text.partition("=")
    if not sep or not name:
        raise ValueError(f"a group is NAME=L.H,L.H,..., got {text!r}")
    return name, [parse_head(h) for h in heads.split(",") if h]


def ablation_conditions(args: Any, params: dict[str, Any]) -> dict[str, Any]:
    """``--heads`` (one condition per head, named ``L{l}H{h}``) and ``--group`` -> the
    ``conditions`` parameter of :func:`~idiomlens.interventions.ablate_heads`."""
    conditions: dict[str, list[list[int]]] = {
        head_label(layer, head): [[layer, head]] for layer, head in args.heads or []
    }
    for name, heads in args.group or []:
        if name in conditions:
            raise ValueError(f"condition name {name!r} is used twice")
        conditions[name] = [list(h) for h in heads]
    if not conditions:
        raise ValueError("ablate needs at least one --heads L.H or --group NAME=L.H,...")
    return {"conditions": conditions, **params}


_LAYERS = Option(
    flags=("--layers",),
    kwargs={"type": int, "nargs": "+", "help": "only these layers"},
    convert=_sorted_unique,
)

for _entry in (
    Analysis(
        name="score",
        target="idiomlens.scoring:score_heads",
        check_alignment=True,
        help="idiom / literal head scores (HeadScores)",
        options=(
            Option(flags=("--kind",), kwargs={"choices": SCORE_KINDS, "default": "idiom"}),
            _LAYERS,
        ),
    ),
    Analysis(
        name="detect",
        target="idiomlens.scoring:detect_heads",
        check_alignment=True,
        help="pattern-based head detection (HeadDetection)",
        options=(
            Option(flags=("--pattern",), kwargs={"choices": DETECT_PATTERNS, "required": True}),
            Option(flags=("--rows",), kwargs={"choices": DETECT_ROWS, "default": "all"}),
            Option(flags=("--exclude-bos",), kwargs={"action": "store_true"}),
            Option(flags=("--exclude-current-token",), kwargs={"action": "store_true"}),
            _LAYERS,
        ),
    ),
    Analysis(
        name="dla",
        target="idiomlens.attribution:direct_logit_attribution",
        check_alignment=True,
        help="next-token direct logit attribution (DLAResult)",
    ),
    Analysis(
        name="ablate",
        target="idiomlens.interventions:ablate_heads",
        reference_param="reference",
        check_alignment=True,
        help="head ablation on the last idiom word (AblationResult)",
        options=(
            Option(
                flags=("--heads",),
                param=None,
                kwargs={
                    "type": parse_head,
                    "nargs": "+",
                    "default": [],
                    "metavar": "L.H",
                    "help": "one condition per head",
                },
            ),
            Option(
                flags=("--group",),
                param=None,
                kwargs={
                    "type": parse_head_group,
                    "action": "append",
                    "default": [],
                    "metavar": "NAME=L.H,...",
                    "help": "a named group of heads (repeatable)",
                },
            ),
            Option(flags=("--kind",), kwargs={"choices": ABLATION_KINDS, "default": "zero"}),
            Option(
                flags=("--positions",), kwargs={"choices": ABLATION_POSITIONS, "default": "all"}
            ),
            Option(
                flags=("--seed",),
                kwargs={"type": int, "default": 0, "help": "resample permutation seed"},
            ),
        ),
        cli_params=ablation_conditions,
    ),
    Analysis(
        name="awareness",
        target="idiomlens.interventions:idiom_awareness",
        check_alignment=True,
        help="sentence loss and idiom next-word accuracy (AwarenessResult)",
    ),
    Analysis(
        name="patch",
        target="idiomlens.runs.tasks:patch_corpus",
        chunked=False,
        help="activation patching of heads on clean/corrupted pairs (PatchingResult)",
        options=(
            Option(flags=("--mode",), kwargs={"choices": PAIR_MODES, "default": "paraphrase"}),
            Option(
                flags=("--by-position",),
                kwargs={
                    "action": "store_true",
                    "help": "[layer, pos, head] instead of [layer, head]",
                },
            ),
            Option(flags=("--seed",), kwargs={"type": int, "default": 0}),
        ),
    ),
    Analysis(
        name="validate",
        target="idiomlens.validation:validate_heads",
        reference_param="reference",
        check_alignment=True,
    ),
):
    register_analysis(_entry)
