"""``idiomlens train --config FILE [--out DIR]``: train small transformers from a config."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["COMMAND", "add_arguments", "run"]

COMMAND = (
    "train",
    "train small HookedTransformers from a TOML/JSON config (sweeps for list-valued fields)",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``train`` subcommand's options."""
    parser.add_argument("--config", required=True, type=Path, help="a TOML or JSON lab config")
    parser.add_argument(
        "--out", type=Path, help="run folder (a sweep: folder of run folders); rerun to resume"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")


def run(args: argparse.Namespace) -> int:
    """Train; print each run's folder and final metrics. Config mistakes exit with 2."""
    from idiomlens.cli import UserError
    from idiomlens.training.lab import LabConfigError, train_lm

    try:
        result = train_lm(args.config, out=args.out, progress=False if args.no_progress else None)
    except LabConfigError as err:
        raise UserError(str(err)) from None
    runs = result if isinstance(result, list) else [result]
    for r in runs:
        shown = ", ".join(
            f"{k} {v:.4g}"
            for k, v in r.metrics.items()
            if k in ("val_loss", "val_accuracy", "train_loss")
        )
        print(f"{r.dir}: {shown}")
    if isinstance(result, list):
        print(f"summary: {Path(runs[0].dir).parent / 'summary.csv'}")
    return 0
