"""Per-head cosine similarity of attention patterns between length-matched sentence pairs.

Pairs come from :func:`~idiomlens.interventions.make_patching_pairs` (``mode=
"paraphrase"``: each figurative sentence with its equal-length paraphrase; or
``"other_idiom"``). For a pair of length ``T`` and a head, the two ``T x T`` patterns
``A`` (figurative) and ``B`` (paraphrase) are compared over the real causal block as
flat vectors: ``cos = sum(A * B) / (||A|| ||B||)``. With ``exclude_bos=True`` the BOS
column (the attention sink) is dropped first, so a head that mostly rests on BOS does
not look identical on both sentences for that reason alone. A head whose pattern has no
mass left scores ``NaN`` for that pair.

Runs on :func:`idiomlens.engine.collect`: each batch of figurative sentences carries its
paraphrases in the same padded layout; the paraphrases' patterns are taken with one
extra hooked :func:`~idiomlens.engine.forward` in the collector's setup, and the
figurative forward's pattern hooks compare against them layer by layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from .._heads import head_label
from .._io import Result
from ..data.align import AlignedExample
from ..data.batching import Batch
from ..engine import Collector, Site, collect, forward, run_meta
from ..models.sites import pattern_hook

__all__ = ["PatternSimilarity", "pattern_similarity", "pattern_cosine"]


def pattern_cosine(
    a: Float[Tensor, "batch head_index query_pos key_pos"],
    b: Float[Tensor, "batch head_index query_pos key_pos"],
    mask: Bool[Tensor, "batch query_pos key_pos"],
) -> Float[Tensor, "batch head_index"]:
    """Cosine of two heads' patterns over the cells of ``mask`` (``NaN`` for no mass).

    >>> a = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]]]])
    >>> round(float(pattern_cosine(a, a, torch.ones(1, 2, 2, dtype=torch.bool))), 6)
    1.0
    """
    m = mask[:, None].to(a.dtype)
    a, b = (a * m).float(), (b * m).float()
    dot = (a * b).sum((-1, -2))
    norm = a.square().sum((-1, -2)).sqrt() * b.square().sum((-1, -2)).sqrt()
    return torch.where(norm > 0, dot / norm.clamp(min=1e-30), float("nan"))


@dataclass
class PatternSimilarity(Result):
    """Per pair and head: cosine similarity of the two sentences' attention patterns.

    Attributes:
        ids: pair ids ``"clean|corrupted"``.
        cosine: ``[pair, layer, head]``.
        mode: how pairs were built; exclude_bos: whether the BOS column was dropped.
        meta: provenance.
    """

    ids: tuple[str, ...]
    cosine: Float[Tensor, "pair layer head_index"]
    mode: str = "paraphrase"
    exclude_bos: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    per_example: ClassVar[tuple[str, ...]] = ("cosine",)

    def mean(self) -> Float[Tensor, "layer head_index"]:
        """Mean over pairs (``NaN`` pairs skipped)."""
        return torch.nanmean(self.cosine, dim=0)

    def to_dataframe(self) -> Any:
        """One row per head: ``head, layer, head_index, cosine`` (mean) and ``n`` pairs."""
        import pandas as pd

        mean, n = self.mean(), (~self.cosine.isnan()).sum(0)
        return pd.DataFrame(
            [
                {
                    "head": head_label(la, h),
                    "layer": la,
                    "head_index": h,
                    "cosine": float(mean[la, h]),
                    "n": int(n[la, h]),
                }
                for la in range(mean.shape[0])
                for h in range(mean.shape[1])
            ]
        )

    def plot(self, **kwargs: Any) -> Any:
        """Layer x head heatmap of the mean cosine (:mod:`idiomlens.viz.followups`)."""
        from ..viz.followups import plot_pattern_similarity

        return plot_pattern_similarity(self, **kwargs)


def _clean_side(pairs: Any, p0: int) -> tuple[list[AlignedExample], list[Tensor]]:
    clean, corrupted = [], []
    for i in range(len(pairs)):
        n = int(pairs.lengths[i])
        toks = tuple(pairs.clean_tokens[i, :n].tolist())
        span = tuple(int(x) for x in pairs.clean_spans[i])
        clean.append(AlignedExample(pairs.ids[i], toks, span, p0, "figurative", i, (), ""))
        corrupted.append(pairs.corrupted_tokens[i, :n])
    return clean, corrupted


def pattern_similarity(
    model: Any,
    corpus: Any,
    *,
    mode: str = "paraphrase",
    exclude_bos: bool = False,
    seed: int = 0,
    batch_tokens: int | None = None,
    progress: bool = True,
    **pair_kwargs: Any,
) -> PatternSimilarity:
    """Cosine similarity of every head's pattern on length-matched pairs (module docstring).

    Args:
        model: a ``HookedTransformer`` with a tokenizer.
        corpus: holds both sides of the pairs (e.g. the full demo corpus).
        mode, seed, pair_kwargs: passed to ``make_patching_pairs`` (e.g. ``paraphrase_id``).
        exclude_bos: drop the BOS column before comparing.
        batch_tokens, progress: as everywhere (each example takes two forward rows).
    """
    from ..interventions.pairs import make_patching_pairs

    pairs = make_patching_pairs(model, corpus, mode=mode, seed=seed, **pair_kwargs)
    p0 = int(pair_kwargs.get("prepend_bos", True))  # BOS at each row's first real slot
    clean, corrupted = _clean_side(pairs, p0)
    n_layers = model.cfg.n_layers
    names = [pattern_hook(la) for la in range(n_layers)]

    def setup(batch: Batch) -> dict[str, Any]:
        other = batch.tokens.clone()
        real = batch.real_mask()
        other[real] = torch.cat([corrupted[i] for i in batch.indices.tolist()]).to(other.device)
        stored: dict[str, Tensor] = {}

        def keep(pattern: Tensor, hook: Any) -> None:
            stored[hook.name] = pattern

        forward(model, other, [(n, keep) for n in names], **batch.forward_kwargs())
        pos = torch.arange(batch.n_pos, device=real.device)
        mask = real[:, :, None] & real[:, None, :] & (pos[:, None] >= pos[None, :])
        if exclude_bos and p0:
            mask &= (pos[None, :] != batch.offsets[:, None])[:, None, :]  # BOS key column
        out = torch.zeros(batch.size, n_layers, model.cfg.n_heads, device=real.device)
        return {"_other": stored, "_mask": mask, "cosine": out}

    def compare(layer: int) -> Any:
        def reduce(pattern: Tensor, batch: Batch, state: dict) -> None:
            other = state["_other"][names[layer]]
            state["cosine"][:, layer] = pattern_cosine(pattern, other, state["_mask"])

        return reduce

    spec = Collector(
        sites=[Site(n, compare(la)) for la, n in enumerate(names)],
        setup=setup,
        rows_per_example=2,
        desc="pattern similarity",
    )
    out = collect(model, clean, spec, batch_tokens=batch_tokens, progress=progress)
    return PatternSimilarity(
        ids=out.ids,
        cosine=out["cosine"],
        mode=mode,
        exclude_bos=exclude_bos,
        meta=run_meta(
            model, clean, analysis="pattern_similarity", mode=mode, exclude_bos=exclude_bos
        ),
    )
