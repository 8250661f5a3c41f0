"""``compare_checkpoints``: one analysis on a base and its checkpoints, compared per unit.

Every model (the base, then each checkpoint) is loaded with ``load_model`` and analysed
by :func:`idiomlens.runs.run_analysis` in its own store folder under ``out``, so each is
computed once, resumable, and reused by later calls (the store key covers the weights;
a checkpoint with the base's exact weights, like a full fine-tune's ``checkpoint-0``,
reuses the base's result). The per-example values are then paired by example id and
the mean statistic per unit gets a percentile bootstrap CI over examples (one weight
matrix per resample batch, local ``torch.Generator(seed)``; NaN values are skipped).
"""

from __future__ import annotations

import hashlib
import logging
from functools import partial
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from .comparison_result import CheckpointComparison
from .comparisons import Comparison, Values, get_comparison
from .folder import step_of
from .result import RESULT_FILE, FinetuneResult

__all__ = ["compare_checkpoints", "bootstrap_mean", "resolve_checkpoints"]

log = logging.getLogger(__name__)


def bootstrap_mean(
    values: Float[Tensor, "example unit"], *, n_boot: int = 1000, ci: float = 0.95, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """NaN-aware mean over examples and its percentile bootstrap CI, per unit.

    Returns ``(mean, ci_low, ci_high, n)``, each ``[unit]``.

    >>> x = torch.tensor([[1.0, float("nan")], [3.0, 2.0]])
    >>> mean, lo, hi, n = bootstrap_mean(x, n_boot=200)
    >>> mean.tolist(), n.tolist(), bool((lo <= mean).all() and (mean <= hi).all())
    ([2.0, 2.0], [2, 1], True)
    """
    if not 0 < ci < 1 or n_boot < 1:
        raise ValueError(f"need 0 < ci < 1 and n_boot >= 1, got ci={ci}, n_boot={n_boot}")
    x = values.double()
    present = ~torch.isnan(x)
    filled = torch.where(present, x, torch.zeros_like(x))
    mask = present.double()
    n = present.sum(0)
    mean = filled.sum(0) / mask.sum(0)  # NaN where a unit has no value
    gen = torch.Generator().manual_seed(seed)
    n_ex = x.shape[0]
    boots = []
    for start in range(0, n_boot, 256):
        rows = min(256, n_boot - start)
        idx = torch.randint(0, n_ex, (rows, n_ex), generator=gen)
        w = torch.zeros(rows, n_ex, dtype=torch.float64).scatter_add_(
            1, idx, torch.ones(rows, n_ex, dtype=torch.float64)
        )
        boots.append((w @ filled) / (w @ mask))
    boot = torch.cat(boots)  # [n_boot, unit]; NaN where a resample drew no value
    alpha = (1 - ci) / 2
    q = torch.tensor([alpha, 1 - alpha], dtype=torch.float64)
    lo, hi = torch.nanquantile(boot, q, dim=0)
    return mean.float(), lo.float(), hi.float(), n


def resolve_checkpoints(checkpoints: Any) -> tuple[list[tuple[int, str, Path]], str | None]:
    """``[(step, label, folder)]`` in step order, and the run's base source if known.

    Accepts a :class:`FinetuneResult`, a run folder holding one, a ``{step: folder}``
    mapping, or a list of folders (``checkpoint-N`` names give the step, others their
    position, 1-based).
    """
    if isinstance(checkpoints, (str, Path)) and (Path(checkpoints) / RESULT_FILE).is_file():
        checkpoints = FinetuneResult.load(checkpoints)
    if isinstance(checkpoints, FinetuneResult):
        entries = [(s, p.name, p) for s, p in checkpoints.checkpoint_steps.items()]
        return entries, checkpoints.source
    if isinstance(checkpoints, dict):
        entries = [(int(s), Path(p).name, Path(p)) for s, p in checkpoints.items()]
    elif isinstance(checkpoints, (list, tuple)):
        entries = []
        for i, p in enumerate(checkpoints, 1):
            step = step_of(Path(p))
            entries.append((step if step is not None else i, Path(p).name, Path(p)))
    else:
        raise TypeError(
            "checkpoints must be a FinetuneResult, a run folder, a {step: folder} dict or a "
            f"list of folders, not {type(checkpoints).__name__}"
        )
    if not entries:
        raise ValueError("compare_checkpoints: no checkpoints given")
    return sorted(entries, key=lambda e: e[0]), None


def _paired(entry: Comparison, base: Any, other: Any, options: dict) -> Values:
    """Per-example statistic of ``other`` against ``base``, matched by id."""
    if entry.paired is not None:
        return entry.paired(base, other, **options)
    b_ids, b_vals, units = entry.values(base, **options)
    o_ids, o_vals, o_units = entry.values(other, **options)
    if o_units != units:
        raise ValueError(f"{entry.name}: the checkpoint's units differ from the base's")
    where = {i: n for n, i in enumerate(b_ids)}
    common = [i for i in o_ids if i in where]
    if not common:
        raise ValueError(f"{entry.name}: no example id is shared by the base and the checkpoint")
    o_index = {i: n for n, i in enumerate(o_ids)}
    b_rows = torch.tensor([where[i] for i in common])
    o_rows = torch.tensor([o_index[i] for i in common])
    return tuple(common), o_vals[o_rows] - b_vals[b_rows], units


def _level(entry: Comparison, result: Any, options: dict, n_units: int) -> Tensor:
    if entry.values is None:
        return torch.full((n_units,), float("nan"))
    _, values, _ = entry.values(result, **options)
    return torch.nanmean(values.double(), dim=0).float()


def _folder(out: Path, entry: Comparison, params: dict, label: str) -> Path:
    from idiomlens.runs import canonicalize
    from idiomlens.runs.spec import canonical_json

    tag = hashlib.sha256(canonical_json(canonicalize(params)).encode()).hexdigest()[:10]
    return out / f"{entry.name}-{tag}" / label


def _run_engine(analysis: str, model: Any, corpus: Any, **kwargs: Any) -> Any:
    """The default runner: the run engine's cached, resumable ``run_analysis``."""
    from idiomlens.runs import run_analysis

    return run_analysis(analysis, model, corpus, **kwargs)


def compare_checkpoints(
    base: Any,
    checkpoints: Any,
    corpus: Any,
    *,
    analysis: str | Comparison = "score",
    out: str | Path,
    params: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    device: str | None = None,
    dtype: str | None = None,
    progress: bool = True,
    batch_tokens: int | None = None,
) -> CheckpointComparison:
    """Run ``analysis`` on ``base`` and every checkpoint; compare each with the base per unit.

    Args:
        base: the base model (any ``load_model`` source); ``None`` takes the run's
            source when ``checkpoints`` is a :class:`FinetuneResult` or its folder.
        checkpoints: a :class:`FinetuneResult`, its run folder, ``{step: folder}`` or a
            list of folders (adapter or full checkpoints; ``load_model`` reads each).
        corpus: the ``IdiomCorpus`` every model is analysed on.
        analysis: a :data:`~.comparisons.COMPARISONS` name (``"score"``: idiom scores
            per head; ``"dla"``: direct logit attribution per head; ``"overlap"``:
            neighbourhood overlap with the base per layer; ``"probe"``: probe accuracy
            per layer) or a ``Comparison``.
        out: cache folder; each model's run-engine store is ``out/<analysis>-<params
            hash>/<label>``, reused by later calls.
        params: analysis parameters (e.g. ``{"kind": "literal"}`` for scores,
            ``{"site": "norm", "pool": "idiom"}`` for overlap and probes, plus probe
            keywords such as ``{"labels": "label", "seed": 1}`` for probes).
        options: how values are read (``{"feature": "phrase"}`` for scores,
            ``{"group": "literal"}`` for DLA, ``{"k": 10}`` for overlap,
            ``{"task": "control"}`` for probes).
        n_boot, ci, seed: percentile bootstrap over examples.
        device, dtype: where and how models are loaded.

    Returns:
        :class:`CheckpointComparison` (``.stat`` / ``.ci_low`` / ``.ci_high``
        ``[checkpoint, unit]``, ``.level`` ``[model, unit]``, ``.to_dataframe()``,
        ``.plot()`` across steps).
    """
    from idiomlens.models import NO_PROCESSING, load_model
    from idiomlens.runs import weights_fingerprint

    entry = get_comparison(analysis)
    params = {**entry.params, **(params or {})}
    options = dict(options or {})
    entries, run_source = resolve_checkpoints(checkpoints)
    base = base if base is not None else run_source
    if base is None:
        raise ValueError("compare_checkpoints: give base= (the model the checkpoints started from)")
    out = Path(out)
    run = entry.run or partial(_run_engine, entry.analysis)
    loading = {"processing": NO_PROCESSING} if entry.raw_weights else {}

    def analyse(source: Any, label: str, cache: dict[str, Any]) -> Any:
        model = load_model(source, device=device, dtype=dtype, **loading)
        key = weights_fingerprint(model)
        if key not in cache:
            cache[key] = run(
                model,
                corpus,
                out=_folder(out, entry, params, label),
                params=params,
                progress=progress,
                batch_tokens=batch_tokens,
                model_source=str(source),
            )
        return cache[key]

    cache: dict[str, Any] = {}
    base_result = analyse(base, "base", cache)
    stats, levels = [], []
    for step, label, folder in entries:
        log.info("compare_checkpoints: %s (step %d)", label, step)
        result = analyse(folder, label, cache)
        _, per_example, units = _paired(entry, base_result, result, options)
        stats.append(bootstrap_mean(per_example, n_boot=n_boot, ci=ci, seed=seed))
        levels.append(_level(entry, result, options, len(units)))
    levels.insert(0, _level(entry, base_result, options, len(units)))
    mean, lo, hi, n = (torch.stack(parts) for parts in zip(*stats, strict=True))
    return CheckpointComparison(
        steps=tuple(e[0] for e in entries),
        labels=tuple(e[1] for e in entries),
        units=units,
        stat=mean,
        ci_low=lo,
        ci_high=hi,
        n=n,
        level=torch.stack(levels),
        axes=entry.axes,
        comparison=entry.name,
        statistic=entry.statistic,
        meta={
            "analysis": entry.analysis,
            "params": params,
            "options": options,
            "base": str(base),
            "checkpoints": [str(e[2]) for e in entries],
            "n_boot": n_boot,
            "ci": ci,
            "seed": seed,
            "corpus_sha256": corpus.content_hash(),
        },
    )
