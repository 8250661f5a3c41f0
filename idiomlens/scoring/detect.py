"""Pattern-based head detection, generalising ``transformer_lens.head_detector.detect_head``.

For a 0/1 mask ``M[q, k]`` over an example's real block, a head's score is
TransformerLens's ``"mul"`` measure ``sum(A * M) / sum(A)``: the fraction of the head's
attention that lands on the marked cells. By default (``rows="all"``) ``sum(A)`` runs over
every real row, exactly as ``detect_head(..., error_measure="mul")`` does, so single
prompts give identical numbers. ``rows="marked"`` restricts both sums to the rows with at
least one marked cell (METHODS.md's wording), which keeps sparse masks such as
idiom->idiom from being diluted by sentence length. An example whose denominator is
empty scores 0. ``exclude_bos`` / ``exclude_current_token`` zero the BOS column / the
diagonal of ``A`` first, like TransformerLens. Unlike TransformerLens 3.9 (which scores
only the first prompt of a list when given a custom pattern) every example counts:
``HeadDetection.scores`` is ``[example, layer, head]`` and ``.mean()`` averages them.

Built-in masks (:data:`MASKS`): ``previous_token``, ``duplicate_token``, ``induction``
(as TransformerLens builds them, BOS included), ``idiom_to_idiom`` (``q, k in I``),
``literal_to_idiom`` (``q in L, k in I``), ``idiom_to_literal`` (``q in I, k in L``);
all are restricted to the causal real block. A custom mask is a callable
``aligned_example -> Bool[T, T]`` or a list of ``[T, T]`` tensors (one per example).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from .._io import Result
from ..data.align import AlignedExample
from ..data.batching import Batch
from ..engine import Collector, Site, check_layers, collect, prepare, run_meta
from ..models.sites import pattern_hook
from .result import top_heads

__all__ = ["MASKS", "HeadDetection", "detect_heads", "pattern_mask", "mask_score"]

BatchMask = Bool[Tensor, "batch query_pos key_pos"]


def _causal_real(batch: Batch) -> Tensor:
    pos = torch.arange(batch.n_pos, device=batch.tokens.device)
    real = batch.real_mask()
    return (pos[:, None] >= pos[None, :]) & real[:, :, None] & real[:, None, :]


def _previous(batch: Batch) -> Tensor:
    pos = torch.arange(batch.n_pos, device=batch.tokens.device)
    return (pos[:, None] - 1 == pos[None, :])[None] & _causal_real(batch)


def _duplicate(batch: Batch) -> Tensor:
    pos = torch.arange(batch.n_pos, device=batch.tokens.device)
    same = batch.tokens[:, :, None] == batch.tokens[:, None, :]
    return same & (pos[:, None] != pos[None, :])[None] & _causal_real(batch)


def _induction(batch: Batch) -> Tensor:
    # M[q, k] = dup[q, k - 1]: the token after an earlier copy of the current token.
    shifted = torch.zeros_like(_duplicate(batch))
    shifted[:, :, 1:] = _duplicate(batch)[:, :, :-1]
    return shifted & _causal_real(batch)


def _between(rows: Tensor, cols: Tensor, batch: Batch) -> Tensor:
    return rows[:, :, None] & cols[:, None, :] & _causal_real(batch)


#: Built-in masks: name -> ``Batch -> Bool[batch, query_pos, key_pos]`` (padded coords).
MASKS: dict[str, Callable[[Batch], Tensor]] = {
    "previous_token": _previous,
    "duplicate_token": _duplicate,
    "induction": _induction,
    "idiom_to_idiom": lambda b: _between(b.idiom_mask(), b.idiom_mask(), b),
    "literal_to_idiom": lambda b: _between(b.literal_mask(), b.idiom_mask(), b),
    "idiom_to_literal": lambda b: _between(b.idiom_mask(), b.literal_mask(), b),
}
_TL_NAMES = {f"{name}_head": name for name in ("previous_token", "duplicate_token", "induction")}


def pattern_mask(
    pattern: str | Callable[[AlignedExample], Tensor] | Sequence[Tensor],
    batch: Batch,
    aligned: Sequence[AlignedExample],
) -> BatchMask:
    """The mask of ``pattern`` for ``batch`` in padded coordinates (causal real block only).

    ``aligned`` is the sequence ``batch.indices`` point into (needed for custom masks).
    """
    if isinstance(pattern, str):
        name = _TL_NAMES.get(pattern, pattern)
        if name not in MASKS:
            raise ValueError(f"unknown pattern {pattern!r}; built-in: {sorted(MASKS)}")
        return MASKS[name](batch)
    out = torch.zeros(batch.size, batch.n_pos, batch.n_pos, dtype=torch.bool)
    for b, i in enumerate(batch.indices.tolist()):  # user masks: one per example
        m = _check_mask(pattern(aligned[i]) if callable(pattern) else pattern[i], aligned[i])
        o, t = int(batch.offsets[b]), len(aligned[i])
        out[b, o : o + t, o : o + t] = m
    return out.to(batch.tokens.device) & _causal_real(batch)


def _check_mask(mask: Any, ex: AlignedExample) -> Tensor:
    mask = torch.as_tensor(mask).bool().cpu()
    if mask.shape != (len(ex), len(ex)):
        raise ValueError(
            f"example {ex.id!r}: mask shape {tuple(mask.shape)}, expected {(len(ex), len(ex))}"
        )
    return mask


def mask_score(
    pattern: Float[Tensor, "batch head_index query_pos key_pos"],
    mask: Bool[Tensor, "batch query_pos key_pos"],
    real: Bool[Tensor, "batch pos"],
    first: Tensor,
    *,
    rows: str = "all",
    exclude_bos: bool = False,
    exclude_current_token: bool = False,
) -> Float[Tensor, "batch head_index"]:
    """``sum(A * M) / sum(A)`` per example and head (float32; empty denominator -> 0).

    ``real`` marks real tokens; ``first`` ``[batch]`` is each example's first real
    (padded) position, the column ``exclude_bos`` zeroes, as TransformerLens zeroes
    column 0.
    """
    pos = torch.arange(pattern.shape[-1], device=pattern.device)
    keep = real[:, :, None] & real[:, None, :]
    if exclude_bos:
        keep = keep & (pos[None, None, :] != first[:, None, None])
    if exclude_current_token:
        keep = keep & (pos[:, None] != pos[None, :])[None]
    if rows == "marked":
        keep = keep & mask.any(-1, keepdim=True)
    elif rows != "all":
        raise ValueError(f"rows must be 'all' or 'marked', got {rows!r}")
    A = torch.where(keep[:, None], pattern.float(), 0.0)
    num = torch.where(mask[:, None], A, 0.0).sum((-2, -1))
    den = A.sum((-2, -1))
    return torch.where(den > 0, num / den.clamp(min=torch.finfo(A.dtype).tiny), 0.0)


@dataclass
class HeadDetection(Result):
    """Pattern scores of every head on every example.

    Attributes:
        ids: example ids in input order.
        scores: ``[example, layer, head]`` the ``"mul"`` score of each example.
        pattern: the mask's name (``"custom"`` for callables / tensors).
        layers: the model layers along the ``layer`` axis.
        meta: model name, options (``rows``, ``exclude_bos``, ...), library version.
    """

    ids: tuple[str, ...]
    scores: Float[Tensor, "example layer head_index"]
    pattern: str = "custom"
    layers: tuple[int, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    per_example: ClassVar[tuple[str, ...]] = ("scores",)

    def __post_init__(self) -> None:
        if not self.layers:
            self.layers = tuple(range(self.scores.shape[1]))

    def mean(self) -> Float[Tensor, "layer head_index"]:
        """Mean score over examples (every example counts equally)."""
        return self.scores.mean(0)

    def __len__(self) -> int:
        return len(self.ids)

    def top(self, k: int = 10) -> Any:
        """The ``k`` heads with the highest mean score as ``HeadRank(layer, head, value)``
        records (a :class:`~idiomlens._heads.Ranking`), ties to the smaller index."""
        return top_heads(self.mean(), k, self.layers)

    def to_dataframe(self) -> Any:
        """Long format: one row per (example, layer, head): ``id, pattern, layer, head, score``."""
        import numpy as np
        import pandas as pd

        n, n_layers, n_heads = self.scores.shape
        return pd.DataFrame(
            {
                "id": np.repeat(np.array(self.ids, dtype=object), n_layers * n_heads),
                "pattern": self.pattern,
                "layer": np.tile(np.repeat(np.array(self.layers), n_heads), n),
                "head": np.tile(np.arange(n_heads), n * n_layers),
                "score": self.scores.reshape(-1).float().numpy(),
            }
        )

    def plot(self, **kwargs: Any) -> Any:
        """Layer x head heatmap of the mean score (:func:`idiomlens.viz.heads.plot_detection`)."""
        from ..viz.heads import plot_detection

        return plot_detection(self, **kwargs)


def _prompts_as_aligned(model: Any, prompts: Sequence[str]) -> list[AlignedExample]:
    """Plain prompts tokenised like ``detect_head`` (``model.to_tokens``); no idiom span."""
    out = []
    for i, text in enumerate(prompts):
        tokens = tuple(model.to_tokens(text)[0].tolist())
        p0 = int(bool(model.cfg.default_prepend_bos))
        out.append(AlignedExample(f"prompt-{i}", tokens, (p0, p0), p0, "", i, (), text))
    return out


def _on_pattern(pattern: Tensor, batch: Batch, state: dict[str, Any], *, slot: int, opts) -> None:
    real = batch.real_mask()
    state["scores"][:, slot] = mask_score(pattern, state["_mask"], real, batch.offsets, **opts)


def detection_collector(
    model: Any,
    pattern: str | Callable[[AlignedExample], Tensor] | Sequence[Tensor],
    aligned: Sequence[AlignedExample],
    layers: tuple[int, ...],
    opts: dict[str, Any],
) -> Collector:
    """The engine spec of detection: per batch, ``scores [batch, layer, head]`` from one
    forward stopped after ``hook_pattern`` of ``layers[-1]``; ``aligned`` is the corpus
    ``batch.indices`` point into (for custom masks)."""
    n_heads = model.cfg.n_heads

    def setup(batch: Batch) -> dict[str, Any]:
        mask = pattern_mask(pattern, batch, aligned)
        scores = torch.zeros(batch.size, len(layers), n_heads, device=mask.device)
        return {"_mask": mask, "scores": scores}

    sites = [
        Site(pattern_hook(layer), partial(_on_pattern, slot=i, opts=opts))
        for i, layer in enumerate(layers)
    ]
    name = pattern if isinstance(pattern, str) else "custom"
    return Collector(sites=sites, setup=setup, desc=f"{name} heads")


def detect_heads(
    model: Any,
    corpus_or_prompts: str | Iterable[Any],
    pattern: str | Callable[[AlignedExample], Tensor] | Sequence[Tensor],
    *,
    rows: str = "all",
    exclude_bos: bool = False,
    exclude_current_token: bool = False,
    layers: Sequence[int] | None = None,
    batch_size: int | None = None,
    batch_tokens: int | None = None,
    padding_side: str = "right",
    progress: bool = False,
) -> HeadDetection:
    """Score every head against a 0/1 attention mask on every example, batched.

    Args:
        model: a ``HookedTransformer``.
        corpus_or_prompts: a prompt, a list of prompts (tokenised with
            ``model.to_tokens``; only the token masks apply), an idiom corpus or a list of
            aligned examples (every mask applies).
        pattern: a name in :data:`MASKS` (TransformerLens names such as
            ``"previous_token_head"`` work too), a callable ``aligned_example ->
            Bool[T, T]``, or a list of ``[T, T]`` masks in input order.
        rows: ``"all"`` (TransformerLens's denominator) or ``"marked"`` (only rows with a
            marked cell).
        exclude_bos, exclude_current_token: as in ``detect_head``.

    >>> from idiomlens.models import tiny_model
    >>> det = detect_heads(tiny_model(), ["a b c a b c"], "induction")
    >>> tuple(det.mean().shape)
    (2, 4)
    """
    if rows not in ("all", "marked"):
        raise ValueError(f"rows must be 'all' or 'marked', got {rows!r}")
    name = pattern if isinstance(pattern, str) else "custom"
    aligned, pattern = _inputs(model, corpus_or_prompts, pattern)
    layer_ids = check_layers(model, layers)
    opts = {"rows": rows, "exclude_bos": exclude_bos}
    opts["exclude_current_token"] = exclude_current_token
    spec = detection_collector(model, pattern, aligned, layer_ids, opts)
    out = collect(
        model,
        aligned,
        spec,
        batch_size=batch_size,
        batch_tokens=batch_tokens,
        padding_side=padding_side,
        progress=progress,
    )
    meta = run_meta(
        model,
        aligned,
        pattern=name,
        **opts,
        padding_side=padding_side,
        batch_size=batch_size,
        batch_tokens=batch_tokens,
    )
    return HeadDetection(
        ids=out.ids, scores=out["scores"], pattern=name, layers=layer_ids, meta=meta
    )


def _inputs(model: Any, corpus_or_prompts: Any, pattern: Any) -> tuple[list[AlignedExample], Any]:
    """Aligned examples, and custom masks built and checked for all of them up front."""
    if isinstance(corpus_or_prompts, str):
        corpus_or_prompts = [corpus_or_prompts]
    items = list(corpus_or_prompts)
    if items and all(isinstance(x, str) for x in items):
        if isinstance(pattern, str) and _TL_NAMES.get(pattern, pattern).startswith(
            ("idiom", "literal")
        ):
            raise ValueError(f"pattern {pattern!r} needs idiom spans; pass an idiom corpus")
        aligned = _prompts_as_aligned(model, items)
    else:
        aligned = prepare(model, items, what="detect_heads")
    if isinstance(pattern, str):
        return aligned, pattern
    if not callable(pattern) and len(pattern) != len(aligned):
        raise ValueError(f"{len(pattern)} masks for {len(aligned)} examples")
    masks = [
        _check_mask(pattern(ex) if callable(pattern) else pattern[i], ex)
        for i, ex in enumerate(aligned)
    ]
    return aligned, masks
