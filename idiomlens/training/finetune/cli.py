"""``idiomlens finetune``: the command line of :func:`~idiomlens.training.finetune.finetune`.

Flags mirror the API keywords (``--max-steps``, ``--epochs``, ``--lr``, ``--seed``,
``--checkpoints``, ``--objective``, ...); choices come from the library's own tables.
Rerunning the same command resumes an interrupted run from its last checkpoint (or
reports the finished one)::

    idiomlens finetune --model models/pythia-160m --data idioms.jsonl --method lora \\
        --max-steps 2000 --checkpoints 10 --out runs/pythia-lora
    torchrun --nproc_per_node 4 -m idiomlens finetune ...   # data-parallel, same flags
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import METHOD_NAMES, OBJECTIVES, PRECISIONS, REPORTERS, SCHEDULES

__all__ = ["COMMAND", "add_arguments", "run"]

COMMAND = (
    "finetune",
    "fine-tune a local HF checkpoint: full, BitFit, LoRA or IA3 (FinetuneResult)",
)


def _warmup(text: str) -> float | int:
    """``0.1`` (a fraction of the steps) or ``100`` (steps)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"warmup is a fraction or a step count, got {text!r}"
        ) from None


def _checkpoints(text: str) -> int | tuple[int, ...]:
    """``10`` (log-spaced count) or ``100,200,500`` (explicit steps)."""
    try:
        values = tuple(int(x) for x in text.split(",") if x)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or STEP,STEP,..., got {text!r}") from None
    return values[0] if len(values) == 1 and "," not in text else values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``finetune`` flags (one per :class:`~.config.FinetuneConfig` field)."""
    run = parser.add_argument_group("run")
    run.add_argument("--model", required=True, help="a local Hugging Face checkpoint folder")
    run.add_argument(
        "--data",
        required=True,
        type=Path,
        help=".txt, .jsonl, .csv or a saved datasets.Dataset folder",
    )
    run.add_argument("--method", required=True, choices=METHOD_NAMES)
    run.add_argument("--out", required=True, type=Path, help="run folder (rerun to resume)")
    run.add_argument("--objective", choices=OBJECTIVES, default="lm")
    run.add_argument("--eval-data", type=Path, help="held-out data in the same format")
    run.add_argument("--device", choices=("cpu", "cuda"), help="default: CUDA when present")
    run.add_argument("--report-to", nargs="+", choices=REPORTERS, default=[])
    run.add_argument("--no-progress", action="store_true")
    run.add_argument("-v", "--verbose", action="store_true")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--max-steps", type=int, help="optimizer steps (overrides --epochs)")
    opt.add_argument("--epochs", type=float, default=1.0)
    opt.add_argument("--lr", type=float, help="peak learning rate (default per method)")
    opt.add_argument("--seed", type=int, default=0)
    opt.add_argument("--batch-size", type=int, default=8)
    opt.add_argument("--grad-accum", type=int, default=1)
    opt.add_argument("--warmup", type=_warmup, default=0.0, help="fraction (0.1) or steps (100)")
    opt.add_argument("--schedule", choices=SCHEDULES, default="linear")
    opt.add_argument("--weight-decay", type=float, default=0.0)
    opt.add_argument("--max-grad-norm", type=float, default=1.0)
    opt.add_argument("--precision", choices=PRECISIONS, default="auto")
    opt.add_argument("--max-length", type=int, help="tokens per example")
    opt.add_argument("--eval-fraction", type=float, default=0.0)
    opt.add_argument("--eval-every", type=int, help="evaluate every N steps")
    opt.add_argument(
        "--checkpoints",
        type=_checkpoints,
        default=10,
        help="N log-spaced saves (plus step 0 and the end) or STEP,STEP,...",
    )
    opt.add_argument("--logging-steps", type=int, default=1)
    ad = parser.add_argument_group("adapters and fields")
    ad.add_argument("--lora-r", type=int, default=8)
    ad.add_argument("--lora-alpha", type=float, default=16.0)
    ad.add_argument("--lora-dropout", type=float, default=0.0)
    ad.add_argument("--target-modules", nargs="+", help="default: per architecture")
    ad.add_argument("--feedforward-modules", nargs="+", help="IA3 feed-forward modules")
    ad.add_argument("--text-field", default="text")
    ad.add_argument("--prompt-field", default="prompt")
    ad.add_argument("--completion-field", default="completion")


_PASSED = (
    "objective",
    "max_steps",
    "epochs",
    "lr",
    "seed",
    "batch_size",
    "grad_accum",
    "warmup",
    "schedule",
    "weight_decay",
    "max_grad_norm",
    "precision",
    "max_length",
    "eval_fraction",
    "eval_every",
    "checkpoints",
    "logging_steps",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "feedforward_modules",
    "text_field",
    "prompt_field",
    "completion_field",
    "device",
    "report_to",
)


def run(args: argparse.Namespace) -> int:
    """Run ``finetune`` from parsed flags; bad input becomes one ``UserError`` line."""
    import logging

    from idiomlens.cli import UserError

    from .run import finetune

    if args.verbose:
        logging.getLogger("idiomlens").setLevel(logging.INFO)
    options = {name: getattr(args, name) for name in _PASSED}
    try:
        result = finetune(
            args.model,
            args.data,
            method=args.method,
            out=args.out,
            eval_data=args.eval_data,
            progress=not args.no_progress,
            **options,
        )
    except (ValueError, FileNotFoundError, TypeError) as err:
        raise UserError(str(err)) from None
    print(
        f"{result.method}: {result.trainable_params:,} of {result.total_params:,} parameters "
        f"trained; {len(result.checkpoints)} checkpoints; final: {result.final}"
    )
    return 0
