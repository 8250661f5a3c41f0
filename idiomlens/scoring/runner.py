"""``score_heads``: stream a corpus through the model, scoring every head inside hooks.

For each padded batch the model runs once, up to the last scored layer's ``hook_z``
(:func:`~idiomlens.models.partial.run_hooks_until`). A hook on each layer's
``hook_pattern`` reduces the pattern to the four attention features and a hook on
``hook_z`` to the output-share feature, both in float32, and nothing else is kept; the
idiom and literal scores can share the pass (:func:`score_heads_both`). Batches are
sized by a token budget, so memory is bounded by the longest sentence, not the corpus.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..data.align import AlignedExample, AlignmentError, align
from ..data.batching import Batch, iter_batches
from ..models.partial import run_hooks_until
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

__all__ = ["score_heads", "score_heads_both", "as_aligned", "check_layers"]

log = logging.getLogger(__name__)


def as_aligned(corpus: Iterable[Any], model: Any) -> list[AlignedExample]:
    """``corpus`` as aligned examples: an already aligned list passes through (checked
    against the context length); anything else goes through :func:`~idiomlens.align`.

    Raises :class:`~idiomlens.data.AlignmentError` naming the first example that does not
    fit, before any compute.
    """
    items = list(corpus)
    if not items:
        raise ValueError("the corpus is empty")
    if not all(isinstance(x, AlignedExample) for x in items):
        return list(align(items, model))
    n_ctx = getattr(model.cfg, "n_ctx", None)
    for ex in items:
        if n_ctx is not None and len(ex) > n_ctx:
            raise AlignmentError(
                f"example {ex.id!r}: {len(ex)} tokens, longer than the context ({n_ctx})"
            )
    return items


def check_layers(model: Any, layers: Sequence[int] | None) -> tuple[int, ...]:
    """Validated, sorted, unique layer indices (all layers when ``None``)."""
    n_layers = model.cfg.n_layers
    if layers is None:
        return tuple(range(n_layers))
    out = tuple(sorted(set(int(layer) for layer in layers)))
    if not out or out[0] < 0 or out[-1] >= n_layers:
        raise ValueError(f"layers must be non-empty and within 0..{n_layers - 1}, got {layers}")
    return out


#: Largest ``batch x heads x query_pos x key_pos`` block whose features are computed at
#: once; longer sentences are scored a few heads at a time (same result, bounded memory).
MAX_PATTERN_CELLS = 2**26


def _pattern_hook(
    pattern: Tensor, hook: Any, *, out: dict[str, Tensor], slot: int, layouts, max_cells: int
) -> None:
    b, n_heads, q, k = pattern.shape
    step = max(1, max_cells // (b * q * k))
    for h0 in range(0, n_heads, step):  # one chunk unless the sentences are very long
        chunk = pattern[:, h0 : h0 + step]
        for kind, layout in layouts.items():
            out[kind][:, slot, h0 : h0 + step, :4] = attention_features(chunk, layout)


def _z_hook(z: Tensor, hook: Any, *, out: dict[str, Tensor], slot: int, layouts, gram) -> None:
    share = head_output_share(z, gram)  # [batch, pos, head], shared by both kinds
    for kind, layout in layouts.items():
        out[kind][:, slot, :, 4] = item_mean(share, layout)


def _score_batch(
    model: Any,
    batch: Batch,
    kinds: tuple[str, ...],
    layers: tuple[int, ...],
    grams: list[Tensor],
    max_cells: int = MAX_PATTERN_CELLS,
) -> dict[str, Tensor]:
    """Features ``[batch, len(layers), head, 5]`` of one batch per kind (float32), from
    one forward pass."""
    layouts = {kind: ScoringLayout.from_batch(batch, kind) for kind in kinds}
    shape = (batch.size, len(layers), model.cfg.n_heads, len(FEATURE_NAMES))
    out = {kind: torch.zeros(shape, device=batch.tokens.device) for kind in kinds}
    hooks = []
    for slot, layer in enumerate(layers):
        on_pattern = partial(
            _pattern_hook, out=out, slot=slot, layouts=layouts, max_cells=max_cells
        )
        on_z = partial(_z_hook, out=out, slot=slot, layouts=layouts, gram=grams[slot])
        hooks += [(pattern_hook(layer), on_pattern), (z_hook(layer), on_z)]
    # hook_z of the last layer is the last value needed: skip its W_O, MLP and the rest
    run_hooks_until(model, batch.tokens, hooks, z_hook(layers[-1]), **batch.forward_kwargs())
    return out


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
        batch_tokens: padded-token budget per batch (default 8192); an example longer
            than the budget runs alone.
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
    aligned = as_aligned(corpus, model)
    layer_ids = check_layers(model, layers)
    grams = [output_gram(model.blocks[layer].attn.W_O.detach()) for layer in layer_ids]
    shape = (len(aligned), len(layer_ids), model.cfg.n_heads, len(FEATURE_NAMES))
    features = {kind: torch.zeros(shape) for kind in kinds}
    batches = iter_batches(
        aligned,
        batch_tokens=batch_tokens,
        batch_size=batch_size,
        padding_side=padding_side,
        device=model.cfg.device,
    )
    desc = f"{' + '.join(kinds)} scores"
    with (
        torch.inference_mode(),
        tqdm(total=len(aligned), disable=not progress, desc=desc, unit="ex") as bar,
    ):
        for batch in batches:
            out = _score_batch(model, batch, kinds, layer_ids, grams, max_pattern_cells)
            index = batch.indices.cpu()
            for kind in kinds:
                features[kind][index] = out[kind].cpu()
            bar.update(batch.size)
    return {
        kind: HeadScores(
            ids=tuple(ex.id for ex in aligned),
            features=features[kind],
            scores=torch.sigmoid(features[kind].sum(-1)),
            feature_names=FEATURE_NAMES,
            kind=kind,
            layers=layer_ids,
            meta=_meta(model, aligned, kind, padding_side, batch_size, batch_tokens),
        )
        for kind in kinds
    }


def _meta(model, aligned, kind, padding_side, batch_size, batch_tokens) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    import hashlib

    from .. import __version__

    digest = hashlib.sha256()
    for ex in aligned:
        digest.update(repr((ex.id, ex.tokens, ex.span, ex.p0)).encode())
    cfg = model.cfg
    return {
        "model_name": str(getattr(cfg, "model_name", "")),
        "n_layers": int(cfg.n_layers),
        "n_heads": int(cfg.n_heads),
        "dtype": str(cfg.dtype),
        "kind": kind,
        "padding_side": padding_side,
        "batch_size": batch_size,
        "batch_tokens": batch_tokens,
        "corpus_hash": digest.hexdigest(),
        "n_examples": len(aligned),
        "idiomlens_version": __version__,
    }
