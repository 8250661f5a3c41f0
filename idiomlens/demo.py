"""``run_demo``: every analysis on the model and corpus the package ships, as one report.

Offline end to end (no Hub access): the demo model (``load_model("idiomlens-demo")``,
trained by :mod:`idiomlens.training.small`) and the demo corpus
(:func:`idiomlens.demo_corpus`). On the figurative sentences it runs

1. :func:`~idiomlens.score_heads_both` (idiom and literal scores, one forward pass);
2. :func:`~idiomlens.detect_heads` with the ``idiom_to_idiom`` mask (attention from idiom
   tokens to earlier idiom tokens, BOS and the diagonal excluded, marked rows only) —
   the candidate *idiom heads* are the top ``n_top`` heads by this score;
3. :func:`~idiomlens.direct_logit_attribution` (next-token, idiom/literal targets);
4. :func:`~idiomlens.ablate_heads` (zero ablation at all positions): every head alone,
   the candidate idiom heads together, the top ``n_top`` heads by combined idiom score
   together, and ``n_top`` random other heads (local generator) as a control;

and :func:`~idiomlens.idiom_awareness` on the figurative, literal and paraphrase splits;
5. :func:`~idiomlens.compare_rankings`: which head ranking (combined idiom score with
   each feature combination, idiom-to-idiom detection, DLA) passes causal validation
   (top-``n_top`` ablation against 200 random sets of other heads).
Each result is saved under ``out/<name>/`` (loadable with its class's ``load``), a
``summary.json`` holds the headline numbers and ``out/report.html`` shows everything
(plotly inlined; it opens with the network unplugged).

>>> from pathlib import Path  # doctest: +SKIP
>>> run_demo(Path("demo-out"))  # doctest: +SKIP
PosixPath('demo-out/report.html')
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ._heads import head_label
from ._io import atomic_write_json
from .attribution import direct_logit_attribution
from .data.demo import DEMO_SPLITS, demo_corpus
from .interventions import ablate_heads, idiom_awareness
from .models import DEMO_MODEL_NAME, load_model
from .scoring import detect_heads, score_heads_both
from .validation import as_ranking, compare_rankings
from .viz.report import Report

__all__ = ["run_demo", "demo_conditions"]

log = logging.getLogger(__name__)

Head = tuple[int, int]


def demo_conditions(
    idiom_heads: list[Head], score_top: list[Head], n_layers: int, n_heads: int, *, seed: int = 0
) -> dict[str, list[Head]]:
    """Ablation conditions: every head alone, then three groups of ``len(idiom_heads)``.

    ``"idiom heads"`` and ``"top idiom score"`` are the given groups; ``"random control"``
    draws the same number of heads, uniformly with ``torch.Generator(seed)``, from the
    heads in neither group.

    >>> demo_conditions([(0, 0)], [(1, 1)], 2, 2)["random control"]
    [(0, 1)]
    """
    heads = [(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    others = [h for h in heads if h not in idiom_heads and h not in score_top]
    k = min(len(idiom_heads), len(others))
    pick = torch.randperm(len(others), generator=torch.Generator().manual_seed(seed))[:k]
    conditions: dict[str, list[Head]] = {head_label(*lh): [lh] for lh in heads}
    conditions["idiom heads"] = list(idiom_heads)
    conditions["top idiom score"] = list(score_top)
    conditions["random control"] = sorted(others[i] for i in pick.tolist())
    return conditions


def _head_table(results: dict[str, Any], n_layers: int, n_heads: int) -> pd.DataFrame:
    """One row per head: scores, idiom attention, DLA and single-head ablation effects."""
    dla = results["dla"]
    summary = results["ablation"].summary().set_index("condition")
    names = [head_label(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    frame = pd.DataFrame(
        {
            "head": names,
            "idiom_score": results["idiom_scores"].mean().flatten().tolist(),
            "literal_score": results["literal_scores"].mean().flatten().tolist(),
            "idiom_to_idiom_attention": results["idiom_attention"].mean().flatten().tolist(),
            "dla_idiom": dla.head_matrix("idiom").flatten().tolist(),
            "dla_literal": dla.head_matrix("literal").flatten().tolist(),
            "ablation_logprob_drop": summary.loc[names, "logprob_diff"].tolist(),
            "ablation_accuracy_drop": summary.loc[names, "accuracy_drop"].tolist(),
        }
    )
    return frame.sort_values("idiom_to_idiom_attention", ascending=False, kind="stable")


def _analyse(model: Any, n_top: int, seed: int, progress: bool) -> dict[str, Any]:
    """Run every analysis; returns the results by output folder name."""
    fig = demo_corpus("figurative")
    res: dict[str, Any] = {}
    for kind, scores in score_heads_both(model, fig, progress=progress).items():
        res[f"{kind}_scores"] = scores
    res["idiom_attention"] = detect_heads(
        model,
        fig,
        "idiom_to_idiom",
        rows="marked",
        exclude_bos=True,
        exclude_current_token=True,
        progress=progress,
    )
    res["dla"] = direct_logit_attribution(model, fig, progress=progress)
    idiom_heads = res["idiom_attention"].top(n_top).heads()
    score_top = res["idiom_scores"].top(n_top).heads()
    conditions = demo_conditions(
        idiom_heads, score_top, model.cfg.n_layers, model.cfg.n_heads, seed=seed
    )
    res["ablation"] = ablate_heads(model, fig, conditions, kind="zero", progress=progress)
    res["validation"] = compare_rankings(
        model, fig, _rankings(res), k=n_top, controls=200, seed=seed, progress=progress
    )
    splits = {split: demo_corpus(split) for split in DEMO_SPLITS}
    res["awareness"] = idiom_awareness(model, splits, progress=progress)
    return res


def _rankings(res: dict[str, Any]) -> dict[str, Any]:
    """The head rankings the report validates causally (see ``idiomlens.validation``)."""
    scores = res["idiom_scores"]
    return {
        **{
            f"idiom score ({c})": as_ranking(scores, combine=c)
            for c in ("sigmoid_sum", "zscore", "rank")
        },
        "idiom_to_idiom detection": res["idiom_attention"],
        "DLA (idiom)": as_ranking(res["dla"], group="idiom"),
    }


def _summary(res: dict[str, Any], table: pd.DataFrame, cfg: Any, seconds: float) -> dict[str, Any]:
    ablation = res["ablation"]
    groups = ablation.summary().set_index("condition")
    return {
        "model": DEMO_MODEL_NAME,
        "shape": f"{cfg.n_layers} layers x {cfg.n_heads} heads, d_model {cfg.d_model}",
        "idiom_heads": ablation.heads("idiom heads"),
        "top_idiom_score_heads": ablation.heads("top idiom score"),
        "random_control_heads": ablation.heads("random control"),
        "group_ablation": {
            name: {k: float(groups.loc[name, k]) for k in ("accuracy", "logprob_diff")}
            for name in ("idiom heads", "top idiom score", "random control")
        },
        "clean_accuracy": float(groups["clean_accuracy"].iloc[0]),
        "awareness": res["awareness"].summary().to_dict(orient="records"),
        "validation": res["validation"].to_dataframe().to_dict(orient="records"),
        "heads": table.to_dict(orient="records"),
        "seconds": round(seconds, 1),
    }


def _report(res: dict[str, Any], table: pd.DataFrame, summary: dict[str, Any]) -> Report:
    from .viz.validation import add_validation_section

    g = summary["group_ablation"]
    n = {row["split"]: row["n"] for row in summary["awareness"]}

    def names(heads: list[Head]) -> str:
        return ", ".join(head_label(layer, head) for layer, head in heads)

    report = Report("idiomlens demo: idiom heads in the shipped model")
    report.add_text(
        f"Model {DEMO_MODEL_NAME} ({summary['shape']}, trained by idiomlens on generated "
        f"idiom sentences) on the shipped demo corpus: {n['figurative']} figurative sentences, "
        f"their {n['paraphrase']} paraphrases (idiom replaced by its meaning, never seen in "
        f"training) and {n['literal']} literal uses. Scores, attribution and ablations use "
        "the figurative sentences.\n\n"
        f"Idiom heads (top by idiom-to-idiom attention): {names(summary['idiom_heads'])}. "
        f"Zero-ablating them together leaves last-idiom-word accuracy at {g['idiom heads']['accuracy']:.1%} "
        f"(clean {summary['clean_accuracy']:.1%}; log-prob drop "
        f"{g['idiom heads']['logprob_diff']:.2f} nats), against "
        f"{g['random control']['accuracy']:.1%} ({g['random control']['logprob_diff']:.2f} nats) "
        f"for the random control {names(summary['random_control_heads'])} and "
        f"{g['top idiom score']['accuracy']:.1%} ({g['top idiom score']['logprob_diff']:.2f} nats) "
        f"for the top heads by combined idiom score, {names(summary['top_idiom_score_heads'])}.",
        heading="Summary",
    )
    report.add_table(table.set_index("head"), heading="Heads", caption=_TABLE_CAPTION)
    report.add_figure(res["ablation"].plot("accuracy"), heading="Ablation (zero, all positions)")
    report.add_figure(res["ablation"].plot("logprob_diff"), caption=_ABLATION_CAPTION)
    report.add_figure(res["idiom_attention"].plot(), heading="Idiom-to-idiom attention")
    report.add_figure(res["idiom_scores"].plot(), heading="Idiom and literal scores")
    report.add_figure(res["literal_scores"].plot())
    report.add_figure(res["idiom_scores"].plot(res["literal_scores"]))
    report.add_figure(res["dla"].plot("idiom"), heading="Direct logit attribution")
    report.add_table(
        res["awareness"].summary().set_index("split"),
        heading="Idiom awareness",
        caption="Mean sentence loss (nats/token) and greedy accuracy on the last idiom word "
        "(for paraphrases: the last word of the meaning, a control the model never saw).",
    )
    add_validation_section(report, res["validation"])
    report.add_code("idiomlens demo --out DIR", heading="Reproduce")
    return report


_TABLE_CAPTION = (
    "Per head, means over the figurative sentences: combined idiom and literal scores "
    "(METHODS.md), fraction of attention from idiom tokens to earlier idiom tokens, direct "
    "logit attribution to idiom / literal next tokens, and the effect of zero-ablating the "
    "head alone (drop in log P(last idiom word) and in greedy accuracy)."
)
_ABLATION_CAPTION = (
    "Mean drop in log P(last idiom word | prompt), clean minus ablated, with standard errors."
)


def run_demo(
    out: str | Path, *, device: str | torch.device | None = None, progress: bool = True
) -> Path:
    """Run the demo analyses offline, save every result under ``out`` and write the report.

    Args:
        out: output folder (created). Gets ``idiom_scores/``, ``literal_scores/``,
            ``idiom_attention/``, ``dla/``, ``ablation/``, ``awareness/``, ``validation/`` (each loadable
            with its result class), ``summary.json`` and ``report.html``.
        device: where to run the model (default CPU).
        progress: show progress bars.

    Returns:
        The path of ``report.html``.
    """
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(DEMO_MODEL_NAME, device=device)
    with torch.inference_mode():
        results = _analyse(model, n_top=2, seed=0, progress=progress)
    for name, result in results.items():
        result.save(out / name)
    table = _head_table(results, model.cfg.n_layers, model.cfg.n_heads)
    summary = _summary(results, table, model.cfg, time.perf_counter() - start)
    atomic_write_json(out / "summary.json", summary)
    path = _report(results, table, summary).write(out / "report.html")
    log.info("demo finished in %.1f s: %s", time.perf_counter() - start, path)
    return path
