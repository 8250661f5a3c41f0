"""``idiomlens probe``: linear probes on saved representations (cached, resumable).

::

    idiomlens probe --reps runs/reps --labels label --out runs/probes
    idiomlens probe --reps runs/reps --labels subject --cv 5

Importing this module is cheap (no torch); the work happens in :func:`run`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["COMMAND", "add_arguments", "run"]

COMMAND = (
    "probe",
    "per-layer linear probes with control tasks on saved representations (ProbeResult)",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``probe`` options (one per ``train_probes`` / ``run_probes`` parameter)."""
    parser.add_argument("--reps", required=True, type=Path, help="a saved Representations folder")
    parser.add_argument("--labels", help="label field of the representations (default: label)")
    parser.add_argument("--out", type=Path, help="result folder (default: REPS/probes-LABELS)")
    parser.add_argument("--layers", type=int, nargs="+", help="probe only these layers")
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0, help="split, control and fold seed")
    parser.add_argument("--C", type=float, default=1.0, help="inverse L2 strength (sklearn's C)")
    parser.add_argument("--cv", type=int, help="choose C per layer by CV with this many folds")
    parser.add_argument("--no-control", action="store_true", help="skip the control task")
    parser.add_argument("--tol", type=float, default=1e-5, help="L-BFGS max|grad| tolerance")
    parser.add_argument("--max-iter", type=int, default=2000)
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument("--layers-per-chunk", type=int, help="layers fitted and saved together")
    parser.add_argument(
        "--no-resume", action="store_true", help="recompute even if OUT holds this run"
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")


def run(args: argparse.Namespace) -> int:
    """Run the probes and print the per-layer table; bad input raises ``UserError``."""
    from idiomlens.cli import UserError

    from .labels import ProbeInputError
    from .run import run_probes

    out = args.out or args.reps / f"probes-{args.labels or 'label'}"
    params = {
        "labels": args.labels, "test_fraction": args.test_fraction, "seed": args.seed,
        "C": args.C, "cv": args.cv, "control": not args.no_control, "tol": args.tol,
        "max_iter": args.max_iter, "device": args.device, "progress": not args.no_progress,
    }  # fmt: skip
    if args.layers:
        params["layers"] = sorted(set(args.layers))
    try:
        result = run_probes(
            args.reps, out=out, layers_per_chunk=args.layers_per_chunk,
            resume=not args.no_resume, **params,
        )  # fmt: skip
    except (ProbeInputError, FileNotFoundError, KeyError) as err:
        raise UserError(f"{args.reps}: {err}") from None
    table = result.to_dataframe()[["layer", "accuracy", "control_accuracy", "selectivity"]]
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"ProbeResult ({len(result.layers)} layers, {len(result.ids)} test rows) in {out}")
    return 0
