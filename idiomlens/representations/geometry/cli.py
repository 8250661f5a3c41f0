"""``idiomlens geometry``: per-layer geometry of a saved Representations folder.

::

    idiomlens geometry --reps reps/ --out geo/                       # all metrics that apply
    idiomlens geometry --reps reps/ --other reps_ft/ --out geo/      # + neighbourhood overlap
    idiomlens geometry --reps reps/ --metrics gride density_clusters --labels subject --Z 1.6

Writes ``OUT`` as a ``GeometryResult`` (``GeometryResult.load(OUT)``), plus
``OUT/geometry.csv`` and the layer-profile figure ``OUT/geometry.html``; without
``--out`` the table is printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["COMMAND", "add_arguments", "run"]

COMMAND = ("geometry", "intrinsic dimension, ADP clusters and overlaps per layer (GeometryResult)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``idiomlens geometry`` (defaults: METHODS.md's)."""
    from .names import METRICS  # no torch

    parser.add_argument("--reps", required=True, type=Path, help="a saved Representations folder")
    parser.add_argument("--other", type=Path, help="a second folder of the same rows (overlap)")
    parser.add_argument("--out", type=Path, help="result folder (default: print the table)")
    parser.add_argument("--metrics", nargs="+", choices=METRICS, help="default: all that apply")
    parser.add_argument("--labels", nargs="+", help="label fields (default: all)")
    parser.add_argument("--layers", type=int, nargs="+", help="default: all layers")
    g = parser.add_argument_group("metric parameters")
    g.add_argument("--fraction", type=float, default=0.9, help="TwoNN: fraction of mu kept")
    g.add_argument(
        "--twonn-fit", choices=("ml", "linear"), default="ml",
        help="TwoNN: maximum likelihood, or DADApy's default linear fit",
    )  # fmt: skip
    g.add_argument("--max-scale", type=int, help="GRIDE: largest n1 (default: all 2 n1 < N)")
    g.add_argument("--Z", type=float, default=1.6, help="ADP significance")
    g.add_argument("--k", type=int, default=16, help="kNN-density neighbours")
    g.add_argument("--id-scale", type=int, help="GRIDE scale n1 of the density's ID (default k)")
    g.add_argument("--maxk", type=int, default=100, help="neighbours searched by ADP")
    g.add_argument("--class-fraction", type=float, default=0.3, help="label overlap's f")
    g.add_argument("--overlap-k", type=int, default=30, help="neighbourhood overlap's k")
    parser.add_argument("--device", help="cpu, cuda, ... (default: the GPU when present)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")


def _load(path: Path) -> Any:
    from idiomlens.representations.result import Representations

    return Representations.load(path)


def run(args: argparse.Namespace) -> int:
    """Compute, save / print; bad input -> ``UserError`` (one line, exit status 2)."""
    from idiomlens.cli import UserError

    from .summary import GeometryConfig, geometry

    try:
        reps = _load(args.reps)
        other = _load(args.other) if args.other else None
        config = GeometryConfig(
            fraction=args.fraction,
            twonn_fit=args.twonn_fit,
            max_scale=args.max_scale,
            Z=args.Z,
            k=args.k,
            id_scale=args.id_scale,
            maxk=args.maxk,
            class_fraction=args.class_fraction,
            overlap_k=args.overlap_k,
        )
        result = geometry(
            reps,
            other=other,
            labels=args.labels,
            metrics=args.metrics,
            config=config,
            layers=args.layers,
            device=args.device,
            progress=not args.no_progress,
        )
    except (OSError, ValueError, KeyError) as err:
        raise UserError(str(err).strip("'\"")) from None
    table = result.to_dataframe()
    if args.out is None:
        print(table.to_string(index=False))
        return 0
    result.save(args.out)
    table.to_csv(args.out / "geometry.csv", index=False)
    result.plot().write_html(args.out / "geometry.html", include_plotlyjs=True)
    print(
        f"GeometryResult ({len(table)} values, layers {sorted(set(table['layer']))}) in {args.out}"
    )
    return 0
