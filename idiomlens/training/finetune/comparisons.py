"""What :func:`~.compare.compare_checkpoints` can compare: one registry entry per analysis.

A :class:`Comparison` names a run-engine analysis (``idiomlens.runs`` registry name) and
says how to read its result as per-example values over *units* (heads, layers):

- ``values(result, **options) -> (ids, [example, unit] values, unit labels)``: the
  per-example level of each unit (NaN where undefined). The default statistic is the
  paired difference ``checkpoint - base`` per example (matched by id); the result also
  reports the mean level of each model, so a figure can show "idiom score of the base's
  top heads vs step".
- ``paired(base, other, **options) -> (ids, [example, unit], unit labels)`` (optional):
  a statistic computed from both results jointly, e.g. the per-point neighbourhood
  overlap of a checkpoint's representations with the base's. When given it replaces the
  difference, and ``values`` may be ``None``.

Both are bootstrapped over examples the same way. Each model's result comes from
``run(model, corpus, *, out, params, progress, batch_tokens, model_source)``; by default
that is :func:`idiomlens.runs.run_analysis` of ``analysis`` (content-keyed and cached in
``out``); analyses that are not run-engine entries bring their own cached runner.
``raw_weights=True`` loads every model with ``processing=NO_PROCESSING``.

The registered comparisons:

- ``"score"`` / ``"dla"``: per head, ``checkpoint - base`` of the idiom score / the
  direct logit attribution;
- ``"overlap"``: per layer, the neighbourhood overlap (METHODS.md, ``k=30`` by default;
  ``options={"k": ...}``) of each checkpoint's representations with the base's, point
  by point (:func:`~idiomlens.representations.geometry.neighbourhood_overlap_points`;
  token rows are averaged per example), so 1 for a checkpoint with the base's weights.
  The representations come from :func:`~idiomlens.extract` with ``out=`` (cached,
  resumable; ``params`` are ``extract``'s keywords, default ``resid_post`` / ``last``)
  on models loaded without weight processing (raw residual vectors, as in Hugging Face);
- ``"probe"``: per layer, ``checkpoint - base`` of the probe's test correctness
  (:func:`~idiomlens.train_probes` through the cached
  :func:`~idiomlens.representations.probes.run.run_probes` on the cached extraction;
  ``params`` mixes ``extract`` keywords (``site``, ``pool``, ``layers``, ``dtype``,
  ``average_duplicates``) and probe keywords (``labels``, ``seed``, ``C``, ...)). The
  seeded split depends on the rows and labels only, so every model is tested on the
  same rows and the mean difference is the difference of accuracies. Rows are the
  test rows (tokens for ``pool="tokens"``; :func:`~idiomlens.compare_probes` resamples
  those by sentence).

>>> sorted(COMPARISONS)
['dla', 'overlap', 'probe', 'score']
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from ..._heads import head_label, layer_label

__all__ = [
    "Comparison",
    "COMPARISONS",
    "register_comparison",
    "get_comparison",
    "head_label",
    "score_values",
    "dla_head_values",
    "overlap_values",
    "probe_values",
]

Values = tuple[tuple[str, ...], Float[Tensor, "example unit"], tuple[str, ...]]


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """How to compare one analysis across checkpoints (see the module docstring).

    Args:
        name: the registry name (``compare_checkpoints(..., analysis=name)``).
        analysis: the run-engine analysis computed for every model.
        axes: names of the unit axes (``("layer", "head")`` or ``("layer",)``).
        values: per-example levels; ``None`` when only ``paired`` makes sense.
        paired: a joint per-example statistic (replaces ``checkpoint - base``).
        statistic: name of the statistic (``"diff"`` unless ``paired`` says otherwise).
        params: default analysis parameters (the caller's ``params`` update them).
        run: ``run(model, corpus, *, out, params, progress, batch_tokens, model_source)``
            -> the model's result, cached in ``out`` (default: ``run_analysis``).
        raw_weights: load every model with ``processing=NO_PROCESSING``.
    """

    name: str
    analysis: str
    axes: tuple[str, ...]
    values: Callable[..., Values] | None
    paired: Callable[..., Values] | None = None
    statistic: str = "diff"
    params: dict[str, Any] = field(default_factory=dict)
    run: Callable[..., Any] | None = None
    raw_weights: bool = False

    def __post_init__(self) -> None:
        if self.values is None and self.paired is None:
            raise ValueError(f"comparison {self.name!r} needs values or paired")


COMPARISONS: dict[str, Comparison] = {}


def register_comparison(entry: Comparison, *, overwrite: bool = False) -> Comparison:
    """Add ``entry`` under its name (``overwrite=True`` replaces one)."""
    if entry.name in COMPARISONS and not overwrite:
        raise ValueError(f"a comparison named {entry.name!r} is already registered")
    COMPARISONS[entry.name] = entry
    return entry


def get_comparison(name: str | Comparison) -> Comparison:
    """The registered comparison ``name`` (or ``name`` itself when it is one)."""
    if isinstance(name, Comparison):
        return name
    try:
        return COMPARISONS[name]
    except KeyError:
        raise ValueError(
            f"unknown analysis {name!r} for compare_checkpoints; known: {', '.join(sorted(COMPARISONS))}"
        ) from None


def score_values(result: Any, *, feature: str | None = None) -> Values:
    """``HeadScores`` -> per-example combined score (or one ``feature``) per head."""
    values = result._values(feature)  # [example, layer, head]
    n, n_layers, n_heads = values.shape
    units = tuple(head_label(layer, h) for layer in result.layers for h in range(n_heads))
    return tuple(result.ids), values.reshape(n, n_layers * n_heads).float(), units


_HEAD = re.compile(r"^L(\d+)H(\d+)$")


def dla_head_values(result: Any, *, group: str | None = None) -> Values:
    """``DLAResult`` -> per-example direct logit attribution of every head in ``group``
    (default the first group, ``"idiom"`` in next-token mode); NaN where it is empty."""
    g = result.group_index(group or result.groups[0])
    index = [i for i, label in enumerate(result.labels) if _HEAD.match(label)]
    units = tuple(result.labels[i] for i in index)
    values = result.attributions[:, torch.tensor(index, dtype=torch.long), g]
    return tuple(result.ids), values.float(), units


register_comparison(
    Comparison(name="score", analysis="score", axes=("layer", "head"), values=score_values)
)
register_comparison(
    Comparison(name="dla", analysis="dla", axes=("layer", "head"), values=dla_head_values)
)


# ---- per-layer comparisons on representations ------------------------------------------

#: ``extract`` keywords a ``"probe"`` comparison's ``params`` may hold (the rest go to
#: the probe).
EXTRACT_PARAMS = ("site", "pool", "layers", "dtype", "average_duplicates")


def _extract_run(model: Any, corpus: Any, *, out: Any, params: dict, progress: bool,
                 batch_tokens: int | None, model_source: str | None = None) -> Any:  # fmt: skip
    """The model's representations, extracted once into ``out`` (``extract(out=...)``)."""
    from idiomlens.representations import extract

    return extract(model, corpus, out=out, progress=progress, batch_tokens=batch_tokens, **params)


def _probe_run(model: Any, corpus: Any, *, out: Any, params: dict, progress: bool,
               batch_tokens: int | None, model_source: str | None = None) -> Any:  # fmt: skip
    """Probes on the model's representations: ``out/representations`` then ``out/probes``."""
    from pathlib import Path

    from idiomlens.representations.probes.run import run_probes

    reps_params = {k: v for k, v in params.items() if k in EXTRACT_PARAMS}
    probe_params = {k: v for k, v in params.items() if k not in EXTRACT_PARAMS}
    reps_dir = Path(out) / "representations"
    _extract_run(model, corpus, out=reps_dir, params=reps_params, progress=progress,
                 batch_tokens=batch_tokens)  # fmt: skip
    return run_probes(reps_dir, out=Path(out) / "probes", progress=progress, **probe_params)


def overlap_values(base: Any, other: Any, *, k: int = 30, device: Any = None) -> Values:
    """Two ``Representations`` of the same rows -> per-example neighbourhood overlap per
    layer (token rows averaged per example; NaN where a row was a duplicate)."""
    from idiomlens.representations.geometry import neighbourhood_overlap_points

    layers, points = neighbourhood_overlap_points(base, other, k=k, device=device, progress=False)
    if base.example_index is not None:  # token rows -> one value per example
        present = (~points.isnan()).double()
        sums = torch.zeros(len(base.ids), len(layers), dtype=torch.float64)
        counts = torch.zeros_like(sums)
        sums.index_add_(0, base.example_index, points.nan_to_num(0.0))
        counts.index_add_(0, base.example_index, present)
        points = sums / counts
    return tuple(base.ids), points.float(), tuple(layer_label(x) for x in layers)


def probe_values(result: Any, *, task: str = "probe") -> Values:
    """``ProbeResult`` -> per test row, 1.0 where the probe (or ``task="control"``) was
    right, per layer (the mean over rows is the accuracy)."""
    correct = result.correct(task).T.float()  # [test, layer]
    return tuple(result.ids), correct, tuple(layer_label(x) for x in result.layers)


register_comparison(
    Comparison(
        name="overlap",
        analysis="extract",
        axes=("layer",),
        values=None,
        paired=overlap_values,
        statistic="overlap",
        params={"site": "resid_post", "pool": "last"},
        run=_extract_run,
        raw_weights=True,
    )
)
register_comparison(
    Comparison(
        name="probe",
        analysis="probe",
        axes=("layer",),
        values=probe_values,
        params={"site": "resid_post", "pool": "last"},
        run=_probe_run,
        raw_weights=True,
    )
)
