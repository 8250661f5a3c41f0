"""``idiomlens validate``: causally validate a head ranking (cached, resumable).

The ranking is a saved result folder (``idiomlens score|detect|dla ... --out DIR``, or any
``HeadScores`` / ``HeadDetection`` / ``DLAResult`` saved with ``.save(DIR)``) or an
explicit ordered list of heads::

    idiomlens score --model idiomlens-demo --corpus fig.jsonl --out runs/score
    idiomlens validate --model idiomlens-demo --corpus fig.jsonl --ranking runs/score \\
        --combine zscore --k 2 --out runs/validate
    idiomlens validate --model idiomlens-demo --corpus fig.jsonl --heads 0.0 0.1 --k 2 --out runs/v

The run goes through :func:`idiomlens.run_analysis` (``"validate"``), so ``--out`` holds
the merged :class:`~idiomlens.validation.ValidationResult` (``ValidationResult.load(DIR)``)
and rerunning the command reuses or resumes it. Importing this module does not import torch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["COMMAND", "add_arguments", "run"]

COMMAND = (
    "validate",
    "causally validate a head ranking against random head sets (ValidationResult)",
)

#: Result types a ``--ranking`` folder may hold, by the type name in its result.json.
_RANKING_TYPES = {
    "HeadScores": "idiomlens.scoring:HeadScores",
    "HeadDetection": "idiomlens.scoring:HeadDetection",
    "DLAResult": "idiomlens.attribution:DLAResult",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``validate`` options (the common run options come from :mod:`idiomlens.cli`)."""
    from idiomlens import cli
    from idiomlens._heads import parse_head

    head_arg = cli._argparse_type(parse_head)
    cli._common(parser)
    source = parser.add_argument_group("ranking (one of)")
    which = source.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--ranking", type=Path, metavar="DIR", help="a saved HeadScores / HeadDetection / DLAResult"
    )
    which.add_argument(
        "--heads", type=head_arg, nargs="+", metavar="L.H", help="explicit ranking, best first"
    )
    source.add_argument(
        "--combine", help="HeadScores feature combination: sigmoid_sum (default), zscore, rank"
    )
    source.add_argument("--group", help="DLAResult group that ranks heads (default: its first)")
    g = parser.add_argument_group("validation")
    g.add_argument("--k", type=cli._positive_int, default=5, help="top heads ablated together")
    g.add_argument("--controls", type=cli._positive_int, default=200, help="random control sets")
    g.add_argument("--seed", type=int, default=0, help="control-set / resample / bootstrap seed")
    g.add_argument(
        "--metric",
        default="logprob_diff",
        help="logit_diff, logprob_diff (default), loss_diff or accuracy_drop",
    )
    g.add_argument("--kind", default="zero", help="ablation kind: zero (default), mean, resample")
    g.add_argument("--positions", default="all", help="ablate at all (default), idiom, literal")
    g.add_argument(
        "--true-heads", type=head_arg, nargs="+", metavar="L.H", help="known heads: precision@k"
    )
    g.add_argument("--alpha", type=float, default=0.05, help="significance level for the verdict")


def _check_choice(option: str, value: str, choices: Any) -> None:
    from idiomlens.cli import UserError

    if value not in choices:
        raise UserError(f"{option}: unknown value {value!r}; choose one of {sorted(choices)}")


def _load_ranking(args: argparse.Namespace) -> Any:
    """The ranking as a :class:`HeadRanking` (JSON data, part of the run key)."""
    import importlib

    from idiomlens.cli import UserError
    from idiomlens.scoring.combine import COMBINE
    from idiomlens.validation import as_ranking

    if args.heads:
        if args.combine or args.group:
            raise UserError("--combine / --group apply to a --ranking folder, not to --heads")
        return as_ranking(args.heads)
    header = args.ranking / "result.json"
    try:
        type_name = json.loads(header.read_text()).get("type")
    except (OSError, ValueError) as err:
        raise UserError(f"--ranking {args.ranking}: no saved result there ({err})") from None
    if type_name not in _RANKING_TYPES:
        raise UserError(
            f"--ranking {args.ranking}: holds a {type_name}; a ranking is one of "
            f"{sorted(_RANKING_TYPES)}"
        )
    module, _, name = _RANKING_TYPES[type_name].partition(":")
    result = getattr(importlib.import_module(module), name).load(args.ranking)
    opts: dict[str, Any] = {}
    if args.combine is not None:
        _check_choice("--combine", args.combine, COMBINE)
        if type_name != "HeadScores":
            raise UserError(
                f"--combine applies to HeadScores, and {args.ranking} holds a {type_name}"
            )
        opts["combine"] = args.combine
    if args.group is not None:
        if type_name != "DLAResult":
            raise UserError(
                f"--group applies to a DLAResult, and {args.ranking} holds a {type_name}"
            )
        _check_choice("--group", args.group, result.groups)
        opts["group"] = args.group
    return as_ranking(result, **opts)


def run(args: argparse.Namespace) -> int:
    """Validate the ranking through ``run_analysis("validate", ...)`` and print the verdict."""
    import os

    from idiomlens import cli
    from idiomlens.interventions.specs import KINDS
    from idiomlens.validation.stats import METRICS

    _check_choice("--metric", args.metric, METRICS)
    _check_choice("--kind", args.kind, KINDS)
    _check_choice("--positions", args.positions, ("all", "idiom", "literal"))
    ranking = _load_ranking(args)
    model = cli._load_model(args)
    n_heads = model.cfg.n_layers * model.cfg.n_heads
    if 2 * args.k > n_heads:
        raise cli.UserError(
            f"--k {args.k}: the model has only {n_heads} heads, too few for control sets of "
            f"{args.k} heads outside the top {args.k}; use a smaller --k"
        )
    try:
        ranking.score_table(model.cfg.n_layers, model.cfg.n_heads)
    except ValueError as err:
        raise cli.UserError(str(err)) from None
    if len(ranking.heads) < args.k:
        raise cli.UserError(f"--k {args.k}: the ranking has only {len(ranking.heads)} heads")
    params: dict[str, Any] = {
        "ranking": ranking,
        "k": args.k,
        "controls": args.controls,
        "seed": args.seed,
        "metric": args.metric,
        "kind": args.kind,
        "positions": args.positions,
        "true_heads": [list(h) for h in args.true_heads or []],
    }
    result = _run_analysis(args, model, params)
    if result is None or int(os.environ.get("RANK", "0")) != 0:
        return 0
    s = result.summary()
    verdict = "PASSES" if result.passed(args.alpha) else "does not pass"
    print(
        f"{s['ranking']}: top {s['top_heads']} effect {s['effect']:.4g} "
        f"[{s['ci_low']:.4g}, {s['ci_high']:.4g}] vs control mean {s['control_mean']:.4g} "
        f"(max {s['control_max']:.4g}); p = {s['p_value']:.4g}, Spearman {s['spearman']:.3f}"
        + (f", precision@k {s['precision_at_k']:.2f}" if s["precision_at_k"] is not None else "")
        + f" -> {verdict} at alpha {args.alpha}; ValidationResult in {args.out}"
    )
    return 0


def _run_analysis(args: argparse.Namespace, model: Any, params: dict[str, Any]) -> Any:
    from idiomlens import cli

    result = cli.run_registered(args, "validate", params, model=model)
    if args.shard is not None:
        print(f"shard {args.shard[0]}/{args.shard[1]} of validate done in {args.out}")
    return result
