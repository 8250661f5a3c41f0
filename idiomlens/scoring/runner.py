"""``score_heads``: stream a corpus through the model, scoring every head inside hooks.

A reduce on each scored layer's ``hook_pattern`` turns the pattern into the four
attention features and one on ``hook_z`` into the output-share feature, both in float32,
and nothing else is kept; the idiom and literal scores can share the pass
(:func:`score_heads_both`). Everything else — alignment, token-budgeted padded batches,
stopping the forward right after the last layer's ``hook_z``, scattering back into
corpus order — is the engine's (:func:`~idiomlens.engine.collect`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor

from ..data.batching import Batch
from ..engine import Collector, Site, check_layers, collect, prepare, run_meta
from ..models.sites import pattern_hook, z_hook
from .features import (
    FEATURE_NAMES,
    KINDS,
    ScoringLayout,
    attention_features,
    head_output_share,
    item_mean,
    output_gram,
)
from .result import HeadScores

__all__ = ["score_heads", "score_heads_both", "scoring_collector"]

log = logging.getLogger(__name__)

#: Largest ``batch x heads x query_pos x key_pos`` block whose features are computed at
#: once; longer sentences are scored a few heads at a time (same result, bounded memory).
MAX_PATTERN_CELLS = 2**26


def _on_pattern(
    pattern: Tensor, batch: Batch, state: dict[str, Any], *, slot: int, max_cells: int
) -> None:
    b, n_heads, q, k = pattern.shape
    step = max(1, max_cells // (b * q * k))
    for h0 in range(0, n_heads, step):  # one chunk unless the sentences are very long
        chunk = pattern[:, h0 : h0 + step]
        for kind, layout in state["_layouts"].items():
            state[kind][:, slot, h0 : h0 + step, :4] = attention_features(chunk, layout)


def _on_z(z: Tensor, batch: Batch, state: dict[str, Any], *, slot: int, gram: Tensor) -> None:
    share = head_output_share(z, gram)  # [batch, pos, head], shared by both kinds
    for kind, layout in state["_layouts"].items():
        state[kind][:, slot, :, 4] = item_mean(share, layout)


def scoring_collector(
    model: Any,
    kinds: tuple[str, ...],
    layers: tuple[int, ...],
    *,
    max_pattern_cells: int = MAX_PATTERN_CELLS,
) -> Collector:
    """The engine spec of head scoring: per batch, ``{kind: features [batch, layer,
    head, 5]}`` (float32) from one forward that stops after ``hook_z`` of ``layers[-1]``."""
    grams = [output_gram(model.blocks[layer].attn.W_O.detach()) for layer in layers]
    n_heads = model.cfg.n_heads

    def setup(batch: Batch) -> dict[str, Any]:
        shape = (batch.size, len(layers), n_heads, len(FEATURE_NAMES))
        state: dict[str, Any] = {
            kind: torch.zeros(shape, device=batch.tokens.device) for kind in kinds
        }
        state["_layouts"] = {kind: ScoringLayout.from_batch(batch, kind) for kind in kinds}
        return state

    sites = []
    for slot, layer in enumerate(layers):
        on_pattern = partial(_on_pattern, slot=slot, max_cells=max_pattern_cells)
        sites += [
            Site(pattern_hook(layer), on_pattern),
            Site(z_hook(layer), partial(_on_z, slot=slot, gram=grams[slot])),
        ]
    return Collector(sites=sites, setup=setup, desc=f"{' + '.join(kinds)} scores")


def score_heads(
    model: Any,
    corpus: Iterable[Any],
    *,
    kind: str = "idiom",
    batch_size: int | None = None,
    batch_tokens: int | None = None,
    padding_side: str = "right",
    layers: Sequence[int] | None = None,
    progress: bool = True,
    max_pattern_cells: int = MAX_PATTERN_CELLS,
) -> HeadScores:
    """Score every attention head on every example for idiom or literal processing.

    Args:
        model: a ``HookedTransformer`` (any dtype; features are computed in float32).
        corpus: an :class:`~idiomlens.IdiomCorpus` / iterable of examples (aligned with
            the model's tokenizer) or a list of already aligned examples.
        kind: ``"idiom"`` (features over the idiom span ``I``) or ``"literal"`` (over
            the literal set ``L``), as in METHODS.md. For both, use
            :func:`score_heads_both`, which shares one forward pass.
        batch_size: at most this many examples per forward pass.
        batch_tokens: padded-token budget per batch (default
            :data:`~idiomlens.engine.DEFAULT_BATCH_TOKENS`); an example longer than the
            budget runs alone.
        padding_side: ``"right"`` (default) or ``"left"``; results do not depend on it.
        layers: layers to score (default all); the forward stops after the last one.
        progress: show a tqdm bar over examples.
        max_pattern_cells: memory bound for the feature computation: patterns with more
            ``batch x head x pos x pos`` cells are reduced a few heads at a time.

    Returns:
        :class:`HeadScores` with ``features [example, layer, head, 5]`` and
        ``scores = sigmoid(features.sum(-1))`` in corpus order.

    >>> from idiomlens.models import tiny_model
    >>> from idiomlens.data import IdiomExample
    >>> model = tiny_model()
    >>> res = score_heads(model, [IdiomExample("a", "He spilled the beans.", (3, 20))],
    ...                   progress=False)
    >>> tuple(res.scores.shape)
    (1, 2, 4)
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return _score(
        model,
        corpus,
        (kind,),
        batch_size=batch_size,
        batch_tokens=batch_tokens,
        padding_side=padding_side,
        layers=layers,
        progress=progress,
        max_pattern_cells=max_pattern_cells,
    )[kind]


def score_heads_both(model: Any, corpus: Iterable[Any], **kwargs: Any) -> dict[str, HeadScores]:
    """``{"idiom": ..., "literal": ...}`` from one forward pass per batch.

    Takes the keyword arguments of :func:`score_heads` (except ``kind``); each result
    equals the one :func:`score_heads` gives for its kind.

    >>> from idiomlens.models import tiny_model
    >>> from idiomlens.data import IdiomExample
    >>> both = score_heads_both(tiny_model(), [IdiomExample("a", "He spilled the beans.", (3, 20))],
    ...                         progress=False)
    >>> sorted(both), both["literal"].kind
    (['idiom', 'literal'], 'literal')
    """
    if "kind" in kwargs:
        raise TypeError("score_heads_both computes both kinds; drop kind=")
    return _score(model, corpus, KINDS, **kwargs)


def _score(
    model: Any,
    corpus: Iterable[Any],
    kinds: tuple[str, ...],
    *,
    batch_size: int | None = None,
    batch_tokens: int | None = None,
    padding_side: str = "right",
    layers: Sequence[int] | None = None,
    progress: bool = True,
    max_pattern_cells: int = MAX_PATTERN_CELLS,
) -> dict[str, HeadScores]:
    aligned = prepare(model, corpus, what="score_heads")
    layer_ids = check_layers(model, layers)
    spec = scoring_collector(model, kinds, layer_ids, max_pattern_cells=max_pattern_cells)
    out = collect(
        model,
        aligned,
        spec,
        batch_tokens=batch_tokens,
        batch_size=batch_size,
        padding_side=padding_side,
        progress=progress,
    )
    return {
        kind: HeadScores(
            ids=out.ids,
            features=out[kind],
            scores=torch.sigmoid(out[kind].sum(-1)),
            feature_names=FEATURE_NAMES,
            kind=kind,
            layers=layer_ids,
            meta=run_meta(
                model,
                out.aligned,
                kind=kind,
                padding_side=padding_side,
                batch_size=batch_size,
                batch_tokens=batch_tokens,
            ),
        )
        for kind in kinds
    }
