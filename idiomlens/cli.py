"""The ``idiomlens`` command line (also ``python -m idiomlens`` and ``torchrun -m idiomlens``).

Subcommands come from two registries, so adding one is one entry:

- every analysis in :mod:`idiomlens.runs.registry` with a ``help`` line becomes
  ``idiomlens NAME``, with the shared run options (``--model``, ``--corpus``, ``--out``,
  ...) and the analysis's own :class:`~idiomlens.runs.registry.Option` entries (their
  choices are the library's); it parses into the parameters the Python API takes and
  runs through :func:`idiomlens.runs.run_analysis`, so results are chunked, cached,
  resumable and shardable, and ``--out DIR`` holds the merged result
  (``HeadScores.load(DIR)``) next to ``spec.json``;
- every module in :data:`COMMAND_MODULES` exposing ``COMMAND = ("name", "help")``,
  ``add_arguments(parser)`` and ``run(args) -> int`` becomes ``idiomlens name``. Its
  ``COMMAND`` is read from the source without importing it, and the module is imported
  only when its command runs, so ``idiomlens --help`` stays cheap whatever it imports.

::

    idiomlens score --model idiomlens-demo --corpus sentences.jsonl --kind idiom --out runs/score
    torchrun --standalone --nproc_per_node 4 -m idiomlens score ... --out runs/score

A finished run is answered from ``--out`` without importing torch or loading the model
when the model is a local folder (or ``idiomlens-demo``): see
:mod:`idiomlens.runs.request`.

User mistakes (a missing file, an unknown model, a span outside its text, a sentence
longer than the context, a bad option) print one line ``idiomlens: error: ...`` and exit
with status 2; anything else is a bug and shows its traceback. Importing this module is
cheap: torch and the analyses are imported inside the commands.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser", "UserError"]

log = logging.getLogger("idiomlens.cli")

DTYPES = ("float32", "float16", "bfloat16", "float64")

#: Modules that each add one subcommand: ``COMMAND = ("name", "one-line help")``,
#: ``add_arguments(parser)`` and ``run(args) -> int`` (torch imported inside ``run``).
COMMAND_MODULES: tuple[str, ...] = (
    "idiomlens.demo_command",
    "idiomlens.training.finetune.cli",
    "idiomlens.validation.command",
    "idiomlens.representations.geometry.cli",
    "idiomlens.representations.cli",
    "idiomlens.training.lab.cli",
    "idiomlens.representations.probes.command",
)


class UserError(Exception):
    """A mistake in the command's input: reported in one line, exit status 2."""


# ---- argument types ----------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _shard(text: str) -> tuple[int, int]:
    from idiomlens.runs.distributed import parse_shard

    try:
        return parse_shard(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _argparse_type(fn: Callable[[str], Any]) -> Callable[[str], Any]:
    """``fn`` with its ``ValueError`` message shown by argparse (not "invalid value")."""
    if fn in (int, float, str, Path):
        return fn

    def parse(text: str) -> Any:
        try:
            return fn(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = getattr(fn, "__name__", "value")
    return parse


# ---- the parser ----------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("run")
    g.add_argument(
        "--model",
        required=True,
        help="any load_model source: idiomlens-demo, a saved folder, a HF checkpoint dir, a TransformerLens name",
    )
    g.add_argument(
        "--corpus", required=True, type=Path, help="a JSONL / CSV file or an EPIE folder"
    )
    g.add_argument("--split", help="EPIE split: formal, formal-literal, static, trans")
    g.add_argument("--out", required=True, type=Path, help="result folder (reused and resumed)")
    g.add_argument(
        "--device", help="cpu, cuda, cuda:1, ... (default: cpu, or cuda:LOCAL_RANK under torchrun)"
    )
    g.add_argument("--dtype", choices=DTYPES, help="model dtype (default: as saved)")
    g.add_argument(
        "--batch-tokens", type=_positive_int, help="padded tokens per forward pass (halved on OOM)"
    )
    g.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=256,
        help="examples per saved chunk (default 256)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--no-resume", action="store_true", help="recompute even if DIR holds this run")
    g.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="job-array shard: compute chunks I mod N only; merge later by running without --shard",
    )
    g.add_argument("-v", "--verbose", action="store_true", help="log progress details")


def _add_analysis(sub: Any, entry: Any) -> None:
    p = sub.add_parser(entry.name, help=entry.help, description=entry.help)
    _common(p)
    for option in entry.options:
        kwargs = dict(option.kwargs)
        if "type" in kwargs:
            kwargs["type"] = _argparse_type(kwargs["type"])
        p.add_argument(*option.flags, dest=option.dest, **kwargs)
    p.set_defaults(func=run_analysis_command, analysis=entry.name)


def _module_file(module: str) -> Path | None:
    """The source file of ``module``, found without importing it or its packages."""
    from importlib.machinery import PathFinder

    parts = module.split(".")
    path: list[str] | None = None
    for i in range(len(parts)):
        spec = PathFinder.find_spec(".".join(parts[: i + 1]), path)
        if spec is None:
            return None
        path = list(spec.submodule_search_locations or [])
        if i == len(parts) - 1:
            return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    return None


def command_header(module: str) -> tuple[str, str]:
    """``COMMAND`` of a command module, read from its source when it is a literal
    (so listing commands imports nothing), else by importing the module."""
    import ast

    if module not in sys.modules:
        source = _module_file(module)
        if source is not None:
            for node in ast.parse(source.read_text()).body:
                targets = node.targets if isinstance(node, ast.Assign) else []
                if isinstance(node, ast.AnnAssign):
                    targets = [node.target]
                if any(isinstance(t, ast.Name) and t.id == "COMMAND" for t in targets):
                    try:
                        name, help_ = ast.literal_eval(node.value)  # type: ignore[arg-type]
                        return str(name), str(help_)
                    except ValueError:
                        break
    name, help_ = importlib.import_module(module).COMMAND
    return str(name), str(help_)


def _add_module_command(sub: Any, module: str, full: bool) -> None:
    name, help_ = command_header(module)
    p = sub.add_parser(name, help=help_, description=help_)
    if full:
        mod = importlib.import_module(module)
        mod.add_arguments(p)
        p.set_defaults(func=mod.run)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``idiomlens`` argument parser: a subcommand per registered analysis and per
    module in :data:`COMMAND_MODULES`.

    ``command`` names the subcommand about to run: only its module is imported (all of
    them when ``None``).
    """
    from idiomlens import __version__
    from idiomlens.runs.registry import analysis_names, get_analysis

    parser = argparse.ArgumentParser(
        prog="idiomlens",
        description="Mechanistic interpretability of idioms on TransformerLens models.",
        epilog="Results in --out are cached by content (weights, corpus, parameters): rerun the same command to resume or reuse.",
    )
    parser.add_argument("--version", action="version", version=f"idiomlens {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in analysis_names():
        entry = get_analysis(name)
        if entry.help:
            _add_analysis(sub, entry)
    for module in COMMAND_MODULES:
        _add_module_command(
            sub, module, full=command is None or command_header(module)[0] == command
        )
    return parser


def _command_in(argv: list[str]) -> str:
    """The subcommand named in ``argv`` (the first word that is not an option), or ``""``."""
    return next((a for a in argv if not a.startswith("-")), "")


# ---- shared steps --------------------------------------------------------------------------


def _setup_logging(verbose: bool) -> None:
    rank = os.environ.get("RANK")
    prefix = (
        f"idiomlens[rank {rank}]"
        if rank is not None and os.environ.get("WORLD_SIZE", "1") != "1"
        else "idiomlens"
    )
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format=f"{prefix}: %(levelname)s: %(message)s",
    )


def _device(args: argparse.Namespace) -> str | None:
    """``--device``; under torchrun ``cuda`` (or nothing, with CUDA) means ``cuda:LOCAL_RANK``."""
    if args.device not in (None, "cuda"):
        return args.device
    from idiomlens.runs.distributed import local_device

    return local_device() or args.device


def _load_model(args: argparse.Namespace) -> Any:
    from idiomlens.models import load_model

    try:
        return load_model(args.model, device=_device(args), dtype=args.dtype)
    except (OSError, ValueError, NotImplementedError, KeyError) as err:
        raise UserError(f"cannot load model {args.model!r}: {err}") from None


def _load_corpus(args: argparse.Namespace) -> Any:
    from idiomlens.data import load_corpus

    try:
        corpus = load_corpus(args.corpus, split=args.split)
    except (OSError, ValueError) as err:
        raise UserError(str(err)) from None
    if len(corpus) == 0:
        raise UserError(f"the corpus {args.corpus} has no examples")
    return corpus


def _request(args: argparse.Namespace, analysis: str, params: dict[str, Any]) -> str | None:
    """The run's file-based request key, when a finished run may be served without
    loading the model (see :mod:`idiomlens.runs.request`)."""
    if args.no_resume or args.shard is not None or os.environ.get("WORLD_SIZE", "1") != "1":
        return None
    from idiomlens.runs.request import request_key

    try:
        return request_key(
            analysis=analysis,
            params=params,
            model_source=args.model,
            corpus=args.corpus,
            split=args.split,
            dtype=args.dtype,
        )
    except (OSError, TypeError, ValueError) as err:  # the full path reports bad input
        log.debug("no fast cache lookup: %s", err)
        return None


def _report(args: argparse.Namespace, analysis: str, type_name: str, n_ids: int) -> None:
    if args.shard is not None:
        print(
            f"shard {args.shard[0]}/{args.shard[1]} of {analysis} done in {args.out}; run without --shard to merge"
        )
    elif int(os.environ.get("RANK", "0")) == 0:
        print(f"{type_name} ({n_ids} ids) in {args.out}")


def _run(args: argparse.Namespace, analysis: str, params: dict[str, Any]) -> int:
    from idiomlens.runs.request import lookup, remember

    request = _request(args, analysis, params)
    hit = lookup(args.out, request)
    if hit is not None:  # finished before: no torch, no model
        log.info("%s: the finished result in %s is reused", analysis, args.out)
        _report(args, analysis, str(hit["result_type"]).rpartition(":")[2], int(hit["n_ids"]))
        return 0

    result = run_registered(args, analysis, params)
    if result is not None:
        remember(args.out, request)
        _report(args, analysis, type(result).__name__, len(result.ids))
    else:
        _report(args, analysis, "", 0)
    return 0


def run_registered(
    args: argparse.Namespace, analysis: str, params: dict[str, Any], *, model: Any = None
) -> Any:
    """``run_analysis(analysis, ...)`` with the common run options of ``args`` (``--out``,
    ``--chunk-size``, ``--batch-tokens``, ``--shard``, ...): the one place a command
    drives the run engine. Loads the model (unless given) and the corpus; an alignment
    error names the corpus file as well as the example."""
    from idiomlens.data import AlignmentError
    from idiomlens.runs import run_analysis
    from idiomlens.runs.distributed import shutdown_distributed

    model = _load_model(args) if model is None else model
    corpus = _load_corpus(args)
    try:
        return run_analysis(
            analysis,
            model,
            corpus,
            out=args.out,
            params=params,
            chunk_size=args.chunk_size,
            batch_tokens=args.batch_tokens,
            progress=not args.no_progress,
            resume=not args.no_resume,
            shard=args.shard,
            model_source=str(args.model),
        )
    except AlignmentError as err:  # name the file as well as the example
        raise UserError(f"{args.corpus}: {err}") from None
    finally:
        shutdown_distributed()


# ---- commands ------------------------------------------------------------------------------


def run_analysis_command(args: argparse.Namespace) -> int:
    """Run the registered analysis ``args.analysis`` with the parameters its options give."""
    from idiomlens.runs.registry import get_analysis

    try:
        params = get_analysis(args.analysis).params_from_args(args)
    except ValueError as err:
        raise UserError(str(err)) from None
    return _run(args, args.analysis, params)


# ---- entry point ---------------------------------------------------------------------------


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input, not a bug (imported only once torch is loaded)."""
    types: list[type[BaseException]] = [UserError]
    if "idiomlens.data.align" in sys.modules:
        types.append(sys.modules["idiomlens.data.align"].AlignmentError)
    if "idiomlens.runs.store" in sys.modules:
        types.append(sys.modules["idiomlens.runs.store"].StoreMismatch)
    if "idiomlens.runs.tasks" in sys.modules:
        types.append(sys.modules["idiomlens.runs.tasks"].NoPairsError)
    if "idiomlens.runs.executor" in sys.modules:
        types.append(sys.modules["idiomlens.runs.executor"].OutOfMemoryBudget)
    return tuple(types)


def main(argv: list[str] | None = None) -> int:
    """Run the ``idiomlens`` command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_in(argv))
    args = parser.parse_args(argv)
    _setup_logging(getattr(args, "verbose", False))
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("idiomlens: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as err:
        if not isinstance(err, _user_error_types()):
            raise
        print(f"idiomlens: error: {err}", file=sys.stderr)
        return 2
