"""``idiomlens demo``: the offline demo on the shipped model and corpus (a command module).

A command module is what :data:`idiomlens.cli.COMMAND_MODULES` lists: ``COMMAND``,
``add_arguments(parser)`` and ``run(args) -> int``, importing torch only inside ``run``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

COMMAND = ("demo", "offline demo on the shipped model and corpus: DIR/report.html")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")


def run(args: argparse.Namespace) -> int:
    from idiomlens.cli import UserError

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
