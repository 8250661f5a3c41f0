"""``validate_heads`` / ``compare_rankings``: is a head ranking causally right?

METHODS.md, "Validating a head ranking": ablate the ranking's top-``k`` heads together,
and ``controls`` random ``k``-sets drawn (seeded) from the *other* heads, with the
ablation metrics of :mod:`idiomlens.interventions.metrics`; report the top-``k`` effect,
the control distribution, the empirical p-value (fraction of controls at least as
strong, +1 corrected), a bootstrap CI over examples, and the Spearman correlation
between the ranking's per-head score and each head's single-ablation effect.

Everything runs as ONE :func:`~idiomlens.ablate_heads` call: the top-``k`` set of every
ranking, every control set and every head alone are its named conditions, stacked along
the batch of each forward. Identical head sets (a control drawn twice, a control equal
to another ranking's top set, ``k = 1`` controls that are single heads) are ablated once.
Cost: ``1 + #distinct sets`` stacked copies of each example, i.e. up to
``1 + n_rankings * (1 + controls) + n_layers * n_heads`` rows per example.

The result stores per-example effects, so the registered ``"validate"`` analysis is
chunked, cached and resumable through :func:`~idiomlens.run_analysis`; pass the ranking
as a :class:`~idiomlens.validation.HeadRanking` there (``as_ranking(scores)``), which is
plain JSON data and enters the run key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from ..interventions.ablation import ablate_heads
from .ranking import HeadRanking, as_ranking, draw_controls, head_label
from .result import ComparisonResult, ValidationResult
from .stats import METRICS, metric_values

__all__ = ["validate_heads", "compare_rankings", "DEFAULT_K", "DEFAULT_CONTROLS"]

log = logging.getLogger(__name__)

#: Defaults: five top heads against 200 control sets (smallest possible p = 1/201).
DEFAULT_K = 5
DEFAULT_CONTROLS = 200

Head = tuple[int, int]


def _rankings(
    rankings: Mapping[str, Any], combine: str | None, group: str | None
) -> list[HeadRanking]:
    from ..attribution.result import DLAResult
    from ..scoring.result import HeadScores

    out = []
    for name, source in rankings.items():
        opts: dict[str, Any] = {"name": str(name)}
        if isinstance(source, HeadScores) and combine is not None:
            opts["combine"] = combine
        if isinstance(source, DLAResult) and group is not None:
            opts["group"] = group
        out.append(as_ranking(source, **opts))
    if not out:
        raise ValueError("compare_rankings needs at least one ranking")
    return out


def _sets(
    rankings: list[HeadRanking], k: int, n_layers: int, n_heads: int, controls: int, seed: int
) -> tuple[dict[tuple[Head, ...], str], torch.Tensor, torch.Tensor]:
    """Distinct head sets to ablate (``set -> condition name``), top sets ``[ranking, k, 2]``
    and control sets ``[ranking, control, k, 2]``."""
    tops, ctrls = [], []
    for r in rankings:
        if len(r.heads) < k:
            raise ValueError(f"ranking {r.name!r} has {len(r.heads)} heads, fewer than k={k}")
        top = r.top(k)
        tops.append(torch.tensor(top, dtype=torch.long))
        ctrls.append(draw_controls(top, n_layers, n_heads, controls=controls, seed=seed))
    top_t, ctrl_t = torch.stack(tops), torch.stack(ctrls)
    sets: dict[tuple[Head, ...], str] = {}
    singles = [((la, h),) for la in range(n_layers) for h in range(n_heads)]
    groups = [tuple(sorted(map(tuple, t.tolist()))) for t in top_t]
    groups += [tuple(map(tuple, c.tolist())) for c in ctrl_t.reshape(-1, k, 2)]
    for heads in singles + groups:
        sets.setdefault(heads, "+".join(head_label(*h) for h in heads))
    return sets, top_t, ctrl_t


def compare_rankings(
    model: Any,
    corpus: Iterable[Any],
    rankings: Mapping[str, Any],
    *,
    k: int = DEFAULT_K,
    controls: int = DEFAULT_CONTROLS,
    seed: int = 0,
    metric: str = "logprob_diff",
    kind: str = "zero",
    positions: str = "all",
    combine: str | None = None,
    group: str | None = None,
    true_heads: Sequence[Sequence[int]] | None = None,
    reference: Iterable[Any] | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    batch_tokens: int | None = None,
    progress: bool = True,
) -> ComparisonResult:
    """Validate several rankings on the same examples, side by side (one ablation run).

    Args:
        model: a ``HookedTransformer`` with a tokenizer.
        corpus: the examples (an :class:`~idiomlens.IdiomCorpus`).
        rankings: ``{name: ranking}``; a ranking is a ``HeadScores``, ``HeadDetection``,
            ``DLAResult``, :class:`HeadRanking` or an ordered list of ``(layer, head)``.
        k: top heads ablated together (and the size of each control set).
        controls: random control sets per ranking, drawn with ``torch.Generator(seed)``
            from the heads outside that ranking's top ``k``.
        seed: control-set seed; also the resample-ablation and bootstrap seed.
        metric: a key of :data:`idiomlens.validation.stats.METRICS` (``"logit_diff"``,
            ``"logprob_diff"``, ``"loss_diff"``, ``"accuracy_drop"``).
        kind, positions, reference: as in :func:`~idiomlens.ablate_heads`.
        combine: how ``HeadScores`` rankings combine their features
            (:mod:`idiomlens.scoring.combine`; default the METHODS.md ``"sigmoid_sum"``).
        group: which ``DLAResult`` group ranks heads (default its first group).
        true_heads: known causal heads, for precision@k.
        n_boot, level: bootstrap resamples and CI level.
        batch_tokens: padded-token budget per forward (all stacked rows included).
        progress: show a progress bar.

    Returns:
        :class:`ComparisonResult`; ``result.to_dataframe()`` has one row per ranking.
    """
    cfg = model.cfg
    if metric not in METRICS:  # checked before any forward pass
        raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(METRICS)}")
    ranked = _rankings(rankings, combine, group)
    for r in ranked:
        r.score_table(cfg.n_layers, cfg.n_heads)  # range check, naming the ranking
    sets, top_t, ctrl_t = _sets(ranked, k, cfg.n_layers, cfg.n_heads, controls, seed)
    names = list(sets.values())
    log.info("validate: %d rankings, %d distinct head sets", len(ranked), len(names))
    res = ablate_heads(
        model,
        corpus,
        {name: list(heads) for heads, name in sets.items()},
        kind=kind,
        positions=positions,
        reference=reference,
        seed=seed,
        batch_tokens=batch_tokens,
        progress=progress,
    )
    values = metric_values(res, metric)  # [example, condition]
    col = {heads: names.index(name) for heads, name in sets.items()}

    def gather(table: torch.Tensor) -> torch.Tensor:  # [..., k, 2] -> [example, ...]
        sets_flat = table.reshape(-1, table.shape[-2], 2)
        flat = [col[tuple(map(tuple, s.tolist()))] for s in sets_flat]
        return values[:, flat].reshape(values.shape[0], *table.shape[:-2])

    sorted_tops = torch.stack([t[torch.argsort(t[:, 0] * cfg.n_heads + t[:, 1])] for t in top_t])
    singles = torch.tensor([[[la, h]] for la in range(cfg.n_layers) for h in range(cfg.n_heads)])
    return ComparisonResult(
        ids=res.ids,
        names=tuple(r.name for r in ranked),
        topk_values=gather(sorted_tops),
        control_values=gather(ctrl_t),
        head_values=gather(singles).reshape(-1, cfg.n_layers, cfg.n_heads),
        clean_correct=res.clean_nwp_correct,
        heads=top_t,
        control_heads=ctrl_t,
        ranking_scores=torch.stack([r.score_table(cfg.n_layers, cfg.n_heads) for r in ranked]),
        metric=metric,
        kind=kind,
        positions=positions,
        seed=seed,
        n_boot=n_boot,
        level=level,
        true_heads=tuple(tuple(h) for h in (true_heads or ())),
        meta=_meta(model, k, controls),
    )


def _meta(model: Any, k: int, controls: int) -> dict[str, Any]:
    from .. import __version__

    cfg = model.cfg
    return {
        "model": str(getattr(cfg, "model_name", "")),
        "n_layers": int(cfg.n_layers),
        "n_heads": int(cfg.n_heads),
        "k": int(k),
        "controls": int(controls),
        "library_version": __version__,
    }


def validate_heads(
    model: Any,
    corpus: Iterable[Any],
    ranking: Any,
    *,
    k: int = DEFAULT_K,
    controls: int = DEFAULT_CONTROLS,
    seed: int = 0,
    metric: str = "logprob_diff",
    kind: str = "zero",
    positions: str = "all",
    combine: str | None = None,
    group: str | None = None,
    true_heads: Sequence[Sequence[int]] | None = None,
    reference: Iterable[Any] | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    batch_tokens: int | None = None,
    progress: bool = True,
) -> ValidationResult:
    """Causally validate one head ranking (see the module docstring).

    ``ranking`` is a ``HeadScores`` (combined by ``combine``), ``HeadDetection``,
    ``DLAResult`` (heads by ``group``), :class:`HeadRanking` or an ordered list of
    ``(layer, head)``; the other arguments are those of :func:`compare_rankings`.

    Returns:
        :class:`ValidationResult` with ``.effect``, ``.control_effects``, ``.p_value``,
        ``.ci``, ``.spearman`` (and ``.precision_at_k`` when ``true_heads`` is given).

    >>> from idiomlens.models import tiny_model
    >>> from idiomlens.data import IdiomExample
    >>> corpus = [IdiomExample("a", "He spilled the beans.", (3, 20))]
    >>> res = validate_heads(tiny_model(), corpus, [(0, 1), (1, 2)], k=2, controls=5,
    ...                      progress=False)
    >>> res.top_heads, tuple(res.control_effects.shape), 0 < res.p_value <= 1
    ([(0, 1), (1, 2)], (5,), True)
    """
    rk = as_ranking(
        ranking,
        **({"combine": combine} if combine is not None else {}),
        **({"group": group} if group is not None else {}),
    )
    comp = compare_rankings(
        model,
        corpus,
        {rk.name: rk},
        k=k,
        controls=controls,
        seed=seed,
        metric=metric,
        kind=kind,
        positions=positions,
        true_heads=true_heads,
        reference=reference,
        n_boot=n_boot,
        level=level,
        batch_tokens=batch_tokens,
        progress=progress,
    )
    return comp[rk.name]
