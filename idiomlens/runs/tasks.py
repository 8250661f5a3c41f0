"""Corpus-level drivers for analyses whose API takes tensors rather than a corpus.

:func:`patch_corpus` turns a corpus into length-matched clean/corrupted pairs
(:func:`~idiomlens.interventions.make_patching_pairs`) and patches every head with a
logit-difference metric, so that ``idiomlens patch`` and ``run_analysis("patch", ...)``
work on the same inputs as every other analysis.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

__all__ = ["patch_corpus", "idiom_logit_diff_metric", "NoPairsError"]

log = logging.getLogger(__name__)


class NoPairsError(ValueError):
    """The corpus yields no length-matched clean/corrupted pair (the message says why)."""


def idiom_logit_diff_metric(
    clean_tokens: Int[Tensor, "pair pos"],
    corrupted_tokens: Int[Tensor, "pair pos"],
    clean_spans: Int[Tensor, "pair 2"],
) -> Any:
    """Metric ``logits -> mean over pairs of logit(clean target) - logit(corrupted target)``.

    The targets are the two sentences' tokens at the clean idiom's last position ``e``,
    read from the logits at ``e - 1``: how strongly the (patched) corrupted run predicts
    the idiom's last token rather than the corrupted sentence's token there. Positive
    means "more like the clean idiom". The metric is vmappable (pure indexing).
    """
    rows = torch.arange(clean_tokens.shape[0])
    pos = clean_spans[:, 1] - 1
    clean_t = clean_tokens[rows, clean_spans[:, 1]]
    corrupt_t = corrupted_tokens[rows, clean_spans[:, 1]]

    def metric(logits: Float[Tensor, "pair pos d_vocab"]) -> Float[Tensor, ""]:
        r, p = rows.to(logits.device), pos.to(logits.device)
        diff = logits[r, p, clean_t.to(logits.device)] - logits[r, p, corrupt_t.to(logits.device)]
        return diff.mean()

    return metric


def patch_corpus(
    model: Any,
    corpus: Any,
    *,
    mode: str = "paraphrase",
    by_position: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> Any:
    """Patch every head (``hook_z``) from clean into corrupted sentences of ``corpus``.

    Pairs come from ``make_patching_pairs(model, corpus, mode=mode, seed=seed)``; each
    group of equal-length pairs is patched as one batch with
    :func:`idiom_logit_diff_metric`, and the group results are averaged weighted by their
    number of pairs, which equals the metric averaged over all pairs. With
    ``by_position=True`` the position axis must be shared, so only the largest group of
    equal-length pairs is patched (logged).

    Returns:
        ``PatchingResult`` with ``effects [layer, head]`` (or ``[layer, pos, head]``) and the
        pair ids of the pairs used.
    """
    from idiomlens.engine import corpus_hash, model_device, run_meta
    from idiomlens.interventions import PatchingResult, make_patching_pairs, patch_heads

    try:
        pairs = make_patching_pairs(model, corpus, mode=mode, seed=seed)
    except ValueError as err:
        raise NoPairsError(f"corpus {getattr(corpus, 'name', '')!r}: {err}") from err
    groups = list(pairs.by_length().values())
    if by_position:
        largest = max(groups, key=len)
        if len(groups) > 1:
            log.warning(
                "patch by position: using the %d pairs of length %d (of %d pairs)",
                len(largest),
                largest.clean_tokens.shape[1],
                len(pairs),
            )
        groups = [largest]
    device = model_device(model)
    parts = []
    for g in groups:
        clean, corrupted = g.clean_tokens.to(device), g.corrupted_tokens.to(device)
        metric = idiom_logit_diff_metric(g.clean_tokens, g.corrupted_tokens, g.clean_spans)
        parts.append(
            (
                len(g),
                patch_heads(
                    model, clean, corrupted, metric, by_position=by_position, progress=progress
                ),
                g.ids,
            )
        )
    total = sum(n for n, _, _ in parts)
    first = parts[0][1]
    return PatchingResult(
        effects=sum(r.effects * (n / total) for n, r, _ in parts),
        kind=first.kind,
        axes=first.axes,
        clean_metric=sum(r.clean_metric * n for n, r, _ in parts) / total,
        corrupted_metric=sum(r.corrupted_metric * n for n, r, _ in parts) / total,
        method="exact",
        ids=tuple(i for _, _, ids in parts for i in ids),
        meta=run_meta(
            model,
            pairs.clean_tokens,
            corrupted_hash=corpus_hash(pairs.corrupted_tokens),
            mode=mode,
            by_position=by_position,
            seed=seed,
            method="exact",
            metric="idiom_logit_diff",
        ),
    )
