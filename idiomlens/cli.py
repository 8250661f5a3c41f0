"""The ``idiomlens`` command line (also ``python -m idiomlens`` and ``torchrun -m idiomlens``).

Every analysis subcommand parses into the parameters the Python API takes and runs
through :func:`idiomlens.runs.run_analysis`, so results are chunked, cached, resumable
and shardable, and ``--out DIR`` holds the merged result (``HeadScores.load(DIR)``) next
to ``spec.json``::

    idiomlens score --model idiomlens-demo --corpus sentences.jsonl --kind idiom --out runs/score
    torchrun --standalone --nproc_per_node 4 -m idiomlens score ... --out runs/score

User mistakes (a missing file, an unknown model, a span outside its text, a sentence
longer than the context, a bad option) print one line ``idiomlens: error: ...`` and exit
with status 2; anything else is a bug and shows its traceback. Importing this module is
cheap: torch and the analyses are imported inside the commands.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser", "UserError"]

log = logging.getLogger("idiomlens.cli")

DTYPES = ("float32", "float16", "bfloat16", "float64")
DETECT_PATTERNS = (
    "previous_token",
    "duplicate_token",
    "induction",
    "idiom_to_idiom",
    "literal_to_idiom",
    "idiom_to_literal",
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


def _head(text: str) -> tuple[int, int]:
    """``"L.H"`` or ``"LxHy"`` style ``"L1H3"`` -> ``(layer, head)``."""
    clean = (
        text.upper().replace("L", "").replace("H", ".", 1) if text.upper().startswith("L") else text
    )
    try:
        layer, head = (int(x) for x in clean.split("."))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a head is LAYER.HEAD (e.g. 1.3) or L1H3, got {text!r}"
        ) from None
    return layer, head


def _group(text: str) -> tuple[str, list[tuple[int, int]]]:
    name, sep, heads = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"a group is NAME=L.H,L.H,..., got {text!r}")
    return name, [_head(h) for h in heads.split(",") if h]


# ---- the parser ----------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, *, needs_model: bool = True) -> None:
    g = parser.add_argument_group("run")
    g.add_argument(
        "--model",
        required=needs_model,
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


def _add_commands(sub: Any) -> None:
    p = sub.add_parser("score", help="idiom / literal head scores (HeadScores)")
    _common(p)
    p.add_argument("--kind", choices=("idiom", "literal"), default="idiom")
    p.add_argument("--layers", type=int, nargs="+", help="score only these layers")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("detect", help="pattern-based head detection (HeadDetection)")
    _common(p)
    p.add_argument("--pattern", choices=DETECT_PATTERNS, required=True)
    p.add_argument("--rows", choices=("all", "marked"), default="all")
    p.add_argument("--exclude-bos", action="store_true")
    p.add_argument("--exclude-current-token", action="store_true")
    p.add_argument("--layers", type=int, nargs="+")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("dla", help="next-token direct logit attribution (DLAResult)")
    _common(p)
    p.set_defaults(func=cmd_dla)

    p = sub.add_parser("ablate", help="head ablation on the last idiom word (AblationResult)")
    _common(p)
    p.add_argument(
        "--heads", type=_head, nargs="+", default=[], metavar="L.H", help="one condition per head"
    )
    p.add_argument(
        "--group",
        type=_group,
        action="append",
        default=[],
        metavar="NAME=L.H,...",
        help="a named group of heads (repeatable)",
    )
    p.add_argument("--kind", choices=("zero", "mean", "resample"), default="zero")
    p.add_argument("--positions", choices=("all", "idiom", "literal"), default="all")
    p.add_argument("--seed", type=int, default=0, help="resample permutation seed")
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser(
        "awareness", help="sentence loss and idiom next-word accuracy (AwarenessResult)"
    )
    _common(p)
    p.set_defaults(func=cmd_awareness)

    p = sub.add_parser(
        "patch", help="activation patching of heads on clean/corrupted pairs (PatchingResult)"
    )
    _common(p)
    p.add_argument("--mode", choices=("paraphrase", "other_idiom"), default="paraphrase")
    p.add_argument(
        "--by-position", action="store_true", help="[layer, pos, head] instead of [layer, head]"
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_patch)

    from idiomlens.representations.probes import command as probe_command

    p = sub.add_parser(probe_command.COMMAND[0], help=probe_command.COMMAND[1])
    probe_command.add_arguments(p)
    p.set_defaults(func=probe_command.run)

    p = sub.add_parser("demo", help="offline demo on the shipped model and corpus: DIR/report.html")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--device")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    """The ``idiomlens`` argument parser (subcommands score, detect, dla, ...)."""
    parser = argparse.ArgumentParser(
        prog="idiomlens",
        description="Mechanistic interpretability of idioms on TransformerLens models.",
        epilog="Results in --out are cached by content (weights, corpus, parameters): rerun the same command to resume or reuse.",
    )
    from idiomlens import __version__

    parser.add_argument("--version", action="version", version=f"idiomlens {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_commands(sub)
    return parser


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


def _run(args: argparse.Namespace, analysis: str, params: dict[str, Any]) -> int:
    from idiomlens.data import AlignmentError
    from idiomlens.runs import run_analysis
    from idiomlens.runs.distributed import shutdown_distributed

    model = _load_model(args)
    corpus = _load_corpus(args)
    try:
        result = run_analysis(
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
    if args.shard is not None:
        print(
            f"shard {args.shard[0]}/{args.shard[1]} of {analysis} done in {args.out}; run without --shard to merge"
        )
    elif int(os.environ.get("RANK", "0")) == 0:
        print(f"{type(result).__name__} ({len(result.ids)} ids) in {args.out}")
    return 0


# ---- commands ------------------------------------------------------------------------------


def cmd_score(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"kind": args.kind}
    if args.layers:
        params["layers"] = sorted(set(args.layers))
    return _run(args, "score", params)


def cmd_detect(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {
        "pattern": args.pattern,
        "rows": args.rows,
        "exclude_bos": args.exclude_bos,
        "exclude_current_token": args.exclude_current_token,
    }
    if args.layers:
        params["layers"] = sorted(set(args.layers))
    return _run(args, "detect", params)


def cmd_dla(args: argparse.Namespace) -> int:
    return _run(args, "dla", {})


def cmd_ablate(args: argparse.Namespace) -> int:
    conditions: dict[str, list[list[int]]] = {
        f"L{layer}H{head}": [[layer, head]] for layer, head in args.heads
    }
    for name, heads in args.group:
        if name in conditions:
            raise UserError(f"condition name {name!r} is used twice")
        conditions[name] = [list(h) for h in heads]
    if not conditions:
        raise UserError("ablate needs at least one --heads L.H or --group NAME=L.H,...")
    params = {
        "conditions": conditions,
        "kind": args.kind,
        "positions": args.positions,
        "seed": args.seed,
    }
    return _run(args, "ablate", params)


def cmd_awareness(args: argparse.Namespace) -> int:
    return _run(args, "awareness", {})


def cmd_patch(args: argparse.Namespace) -> int:
    return _run(
        args, "patch", {"mode": args.mode, "by_position": args.by_position, "seed": args.seed}
    )


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        from idiomlens.demo import run_demo
    except ImportError as err:
        if err.name not in ("idiomlens.demo", None):
            raise
        raise UserError(
            "the demo is not part of this installation (idiomlens.demo is missing)"
        ) from None
    report = run_demo(args.out, device=args.device, progress=not args.no_progress)
    print(f"report: {report}")
    return 0


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
    parser = build_parser()
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
