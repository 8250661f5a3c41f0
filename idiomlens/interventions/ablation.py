"""Head ablation over a corpus (METHODS.md, "Ablation").

:func:`ablate_heads` ablates ``hook_z`` of each condition's heads at the chosen positions
and measures, on the idiom's last word, the metrics of
:mod:`idiomlens.interventions.metrics` against the clean run. Many conditions share a
forward: the batch is repeated once per condition along the batch axis (under the token
budget) and each row gets its own head mask, so the ``torch.where`` in the hook ablates
condition ``c``'s heads only in condition ``c``'s rows.

Replacement values:

- ``zero``: ``z = 0``.
- ``mean``: ``z = mean_head_z(model, reference)[layer, head]``, the head's ``z`` averaged
  over every real position (BOS included) of the reference corpus.
- ``resample``: the same head's ``z`` from a donor example of the reference corpus at the
  same position; positions past the donor's end take the donor's last position. Donors
  come from :func:`resample_donors`, which depends only on ids, the reference and the
  seed, so results do not depend on how the corpus is chunked.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from .._heads import head_label
from ..data.align import AlignedExample
from ..data.batching import DEFAULT_BATCH_TOKENS, Batch, make_batch
from ..data.example import IdiomExample
from ..engine import (
    Collector,
    Site,
    capture,
    collect,
    iter_collect,
    model_device,
    prepare,
    run_meta,
)
from ..models.sites import z_hook
from .ablation_result import AblationResult
from .hooks import replacement_hooks
from .metrics import run_word_metrics, sentence_loss_mask, word_spans
from .specs import KINDS, make_value, normalize_heads

__all__ = [
    "ablate_heads",
    "mean_head_z",
    "resample_donors",
    "normalize_conditions",
    "POSITIONS",
]

log = logging.getLogger(__name__)

#: Position sets an ablation can target.
POSITIONS = ("all", "idiom", "literal")


def normalize_conditions(
    conditions: Mapping[str, Any] | Iterable[Any], n_layers: int, n_heads: int
) -> tuple[tuple[str, ...], Bool[Tensor, "condition layer head_index"]]:
    """Condition names and their ``[condition, layer, head]`` head masks.

    ``conditions`` is a mapping ``name -> (l, h) | [(l, h), ...]`` (order kept), a list of
    ``(name, heads)`` pairs, or a list of ``(l, h)`` meaning one condition per head named
    :func:`~idiomlens.head_label` (``"L1H3"``). Names must be unique.

    >>> names, masks = normalize_conditions({"a": (0, 1), "b": [(0, 0), (1, 1)]}, 2, 2)
    >>> names, masks.sum((1, 2)).tolist()
    (('a', 'b'), [1, 2])
    """
    if isinstance(conditions, Mapping):
        items = list(conditions.items())
    else:
        raw = list(conditions)
        if len(raw) == 2 and all(isinstance(x, int) for x in raw):
            raw = [tuple(raw)]  # one head given as (l, h)
        items = [
            (x[0], x[1]) if len(x) == 2 and isinstance(x[0], str) else _head_condition(x)
            for x in raw
        ]
    if not items:
        raise ValueError("no ablation conditions given")
    names = [str(name) for name, _ in items]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate condition names: {dupes}")
    masks = torch.zeros((len(items), n_layers, n_heads), dtype=torch.bool)
    for c, (name, heads) in enumerate(items):
        pairs = normalize_heads(heads)
        if not pairs:
            raise ValueError(f"condition {name!r} has no heads")
        for layer, head in pairs:
            if layer >= n_layers or head >= n_heads:
                raise ValueError(
                    f"condition {name!r}: head ({layer}, {head}) out of range for a model with "
                    f"{n_layers} layers and {n_heads} heads"
                )
            masks[c, layer, head] = True
    return tuple(names), masks


def _head_condition(head: Any) -> tuple[str, list[tuple[int, int]]]:
    ((layer, h),) = normalize_heads([head])
    return head_label(layer, h), [(layer, h)]


def _sum_z(z: Tensor, batch: Batch, state: dict[str, Any], *, layer: int) -> None:
    real = batch.real_mask().double()
    state["z_sum"][:, layer] = torch.einsum("bphe,bp->bhe", z.double(), real)


def mean_head_z(
    model: Any, corpus: Iterable[Any], *, batch_tokens: int | None = None
) -> Float[Tensor, "layer head_index d_head"]:
    """Every head's ``z`` averaged over all real positions (BOS included) of ``corpus``.

    The reference for ``kind="mean"`` ablation. Float32, on the model's device. A sum
    over the whole corpus, streamed batch by batch (:func:`~idiomlens.engine.iter_collect`).
    """
    aligned = prepare(model, corpus, what="mean_head_z (the reference corpus)")
    cfg = model.cfg

    def setup(batch: Batch) -> dict[str, Any]:
        shape = (batch.size, cfg.n_layers, cfg.n_heads, cfg.d_head)
        z_sum = torch.zeros(shape, dtype=torch.float64, device=batch.tokens.device)
        return {"z_sum": z_sum, "count": batch.lengths}

    sites = [Site(z_hook(layer), partial(_sum_z, layer=layer)) for layer in range(cfg.n_layers)]
    spec = Collector(sites=sites, setup=setup, desc="mean z")
    total = torch.zeros((cfg.n_layers, cfg.n_heads, cfg.d_head), dtype=torch.float64)
    count = 0
    for _, out in iter_collect(
        model, aligned, spec, batch_tokens=batch_tokens, progress=False, aligned=aligned
    ):
        total += out["z_sum"].sum(0)
        count += int(out["count"].sum())
    return (total / count).float().to(model_device(model))


def resample_donors(ids: Sequence[str], reference_ids: Sequence[str], seed: int = 0) -> list[int]:
    """Index into ``reference_ids`` of each example's donor.

    The reference gets one seeded random cycle ``perm`` through all its examples (a
    permutation without fixed points, from a local ``torch.Generator``): the example at
    reference index ``j`` takes ``reference[perm[j]]``. An id not in the reference takes
    ``reference[sha256(f"{seed}:{id}") % len(reference)]``. Both depend only on the id,
    the reference and the seed, never on chunking.

    >>> resample_donors(["b", "a", "x"], ["a", "b", "c"], seed=0) == resample_donors(
    ...     ["b", "a", "x"], ["a", "b", "c"], seed=0)
    True
    """
    n = len(reference_ids)
    if n == 0:
        raise ValueError("resample ablation needs a non-empty reference corpus")
    where = {rid: j for j, rid in enumerate(reference_ids)}
    if n == 1 and any(i in where for i in ids):
        raise ValueError("resample ablation needs a reference of at least two examples")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    perm = [0] * n
    for i in range(n):
        perm[order[i]] = order[(i + 1) % n]
    out = []
    for ex_id in ids:
        if ex_id in where:
            out.append(perm[where[ex_id]])
        else:
            digest = hashlib.sha256(f"{seed}:{ex_id}".encode()).digest()
            out.append(int.from_bytes(digest[:8], "big") % n)
    return out


def _donor_z(
    model: Any, batch: Batch, donors: list[AlignedExample], layers: Sequence[int]
) -> dict[int, Tensor]:
    """Donor ``z`` aligned with ``batch`` (right padding): row ``b`` gets its donor's z at
    ``min(p, T_donor - 1)``."""
    donor_batch = make_batch(donors, device=batch.tokens.device)
    _, acts = capture(model, donor_batch.tokens, [z_hook(layer) for layer in layers])
    pos = torch.arange(batch.n_pos, device=batch.tokens.device)[None, :]
    src = torch.minimum(pos, donor_batch.lengths[:, None] - 1)  # [batch, pos]
    rows = torch.arange(batch.size, device=batch.tokens.device)[:, None]
    return {layer: acts[z_hook(layer)][rows, src] for layer in layers}


def _position_mask(batch: Batch, positions: str) -> Bool[Tensor, "batch pos"]:
    masks = {"all": batch.real_mask, "idiom": batch.idiom_mask, "literal": batch.literal_mask}
    return masks[positions]()


def ablate_heads(
    model: Any,
    corpus: Iterable[IdiomExample | AlignedExample],
    conditions: Mapping[str, Any] | Iterable[Any],
    *,
    kind: str = "zero",
    positions: str = "all",
    reference: Iterable[IdiomExample | AlignedExample] | None = None,
    seed: int = 0,
    batch_tokens: int | None = None,
    progress: bool = True,
) -> AblationResult:
    """Ablate heads under every condition and measure the last idiom word's metrics.

    Args:
        model: a ``HookedTransformer`` with a tokenizer.
        corpus: an :class:`~idiomlens.IdiomCorpus`, or examples already aligned by
            :func:`~idiomlens.align` (they keep the idiom's character span, which the
            last-word metrics need).
        conditions: ``{name: (l, h) | [(l, h), ...]}`` (unique names, order kept), or a
            list of ``(l, h)``: one condition per head named by
                :func:`~idiomlens.head_label` (``"L1H3"``).
        kind: ``"zero"``, ``"mean"`` or ``"resample"`` (see the module docstring).
        positions: ablate at ``"all"`` real positions (BOS included), the ``"idiom"`` span
            or the ``"literal"`` positions.
        reference: corpus (raw or aligned) for ``mean`` / ``resample`` values (default:
            ``corpus``). Chunked
            runs pass the full corpus so every chunk uses the same means and donors.
        seed: resampling seed.
        batch_tokens: padded-token budget per forward, stacked condition rows included
            (default :data:`~idiomlens.engine.DEFAULT_BATCH_TOKENS`).
        progress: show a progress bar.

    Returns:
        :class:`~idiomlens.interventions.ablation_result.AblationResult` with ``[example,
        condition]`` metrics in corpus order.

    >>> from idiomlens.models import tiny_model
    >>> from idiomlens.data import IdiomExample
    >>> corpus = [IdiomExample("a", "He spilled the beans.", (3, 20))]
    >>> res = ablate_heads(tiny_model(), corpus, [(0, 0), (1, 2)], progress=False)
    >>> res.conditions, tuple(res.logit_diff.shape)
    (('L0H0', 'L1H2'), (1, 2))
    """
    if kind not in KINDS:
        raise ValueError(f"unknown ablation kind {kind!r}; choose one of {sorted(KINDS)}")
    if positions not in POSITIONS:
        raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")
    cfg = model.cfg
    names, masks = normalize_conditions(conditions, cfg.n_layers, cfg.n_heads)
    aligned = prepare(model, corpus, what="ablate_heads")
    spans_all = word_spans(aligned)
    ref = list(reference) if reference is not None else aligned
    means = mean_head_z(model, ref, batch_tokens=batch_tokens) if kind == "mean" else None
    donors = _donor_table(model, aligned, ref, seed) if kind == "resample" else None
    # condition 0 ablates nothing: the clean run shares the stacked forwards
    stacked = torch.cat([torch.zeros_like(masks[:1]), masks])  # [1 + condition, layer, head]
    spec = _ablation_collector(
        model,
        spans_all,
        stacked,
        positions,
        partial(make_value, kind, means=means),
        donors,
        batch_tokens or DEFAULT_BATCH_TOKENS,
        f"ablate ({kind})",
    )
    out = collect(model, aligned, spec, batch_tokens=batch_tokens, progress=progress).outputs
    clean = {m: v[:, 0] for m, v in out.items()}
    ablated = {m: v[:, 1:] for m, v in out.items()}
    return AblationResult(
        ids=tuple(a.id for a in aligned),
        conditions=names,
        head_masks=masks,
        logit_diff=clean["logit"][:, None] - ablated["logit"],
        logprob_diff=clean["logprob"][:, None] - ablated["logprob"],
        loss_diff=ablated["loss"] - clean["loss"][:, None],
        nwp_correct=ablated["nwp_correct"],
        rank=ablated["rank"],
        clean_logit=clean["logit"],
        clean_logprob=clean["logprob"],
        clean_loss=clean["loss"],
        clean_nwp_correct=clean["nwp_correct"],
        clean_rank=clean["rank"],
        n_word_tokens=spans_all[:, 1] - spans_all[:, 0] + 1,
        kind=kind,
        positions=positions,
        seed=seed,
        meta=run_meta(
            model,
            aligned,
            kind=kind,
            positions=positions,
            seed=seed,
            conditions=list(names),
            reference_ids_hash=None if reference is None else _ids_hash(ref),
            batch_tokens=batch_tokens,
        ),
    )


def _ids_hash(examples: Sequence[Any]) -> str:
    return hashlib.sha256("\n".join(ex.id for ex in examples).encode()).hexdigest()


def _ablation_collector(
    model: Any,
    spans_all: Tensor,
    stacked: Tensor,
    positions: str,
    value: Any,
    donors: list[AlignedExample] | None,
    budget: int,
    desc: str,
) -> Collector:
    """The engine spec of ablation: each example takes ``len(stacked)`` forward rows (one
    per condition, the clean run first); the stacked forwards run in ``finish`` through
    :func:`~idiomlens.engine.forward`, the donors' clean ``z`` in ``setup``."""
    layers = [int(x) for x in stacked.any(2).any(0).nonzero()[:, 0]]

    def setup(batch: Batch) -> dict[str, Any]:
        if donors is None:
            return {}
        rows = [donors[i] for i in batch.indices.tolist()]
        return {"_donor_z": _donor_z(model, batch, rows, layers)}

    def finish(batch: Batch, state: dict[str, Any], logits: Any) -> dict[str, Tensor]:
        spans = spans_all[batch.indices.cpu()].to(batch.tokens.device)
        loss_mask = sentence_loss_mask(batch)
        donor_z = state.get("_donor_z")
        return _ablate_batch(
            model, batch, spans, loss_mask, stacked, positions, value, donor_z, budget
        )

    return Collector(setup=setup, finish=finish, rows_per_example=len(stacked), desc=desc)


def _ablate_batch(
    model: Any,
    batch: Batch,
    spans: Tensor,
    loss_mask: Tensor,
    masks: Tensor,
    positions: str,
    value: Any,
    donor_z: dict[int, Tensor] | None,
    budget: int,
) -> dict[str, Tensor]:
    """Ablated metrics ``[batch, condition]`` of one batch, conditions stacked along rows."""
    n, pos_mask = batch.size, _position_mask(batch, positions)
    per_fwd = max(1, budget // (n * batch.n_pos))
    parts: dict[str, list[Tensor]] = {}
    for start in range(0, masks.shape[0], per_fwd):
        chunk = masks[start : start + per_fwd]  # [k, layer, head]
        k = chunk.shape[0]
        rows = chunk.repeat_interleave(n, dim=0).to(pos_mask.device)  # row r = c * n + b
        row_pos = pos_mask.repeat(k, 1)  # [k * n, pos]
        layer_masks = {
            layer: row_pos[:, :, None] & rows[:, None, layer, :]  # [k * n, pos, head]
            for layer in chunk.any(2).any(0).nonzero()[:, 0].tolist()
        }
        donors_k = (
            None if donor_z is None else {i: z.repeat(k, 1, 1, 1) for i, z in donor_z.items()}
        )
        hooks = replacement_hooks(layer_masks, value(donor_z=donors_k)) if layer_masks else []
        out = run_word_metrics(
            model, batch.tokens.repeat(k, 1), spans.repeat(k, 1), loss_mask.repeat(k, 1), hooks
        )
        for m, v in out.items():
            parts.setdefault(m, []).append(v.reshape(k, n).T)  # [n, k]
    return {m: torch.cat(v, dim=1) for m, v in parts.items()}


def _donor_table(
    model: Any, aligned: Sequence[AlignedExample], reference: Sequence[Any], seed: int
) -> list[AlignedExample]:
    """The aligned donor of each aligned example (only the needed donors are aligned)."""
    donor_idx = resample_donors([a.id for a in aligned], [r.id for r in reference], seed)
    needed = sorted(set(donor_idx))
    donors = prepare(model, [reference[j] for j in needed], what="resample ablation")
    donor_aligned = dict(zip(needed, donors, strict=True))
    return [donor_aligned[j] for j in donor_idx]
