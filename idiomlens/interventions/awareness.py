"""Idiom awareness (METHODS.md): per split, sentence loss and next-word prediction.

For every example: the mean next-token loss over the sentence, and whether greedy
decoding from the text before the idiom's last word reproduces that word exactly (the
same definitions as ablation's ``clean_loss`` / ``clean_nwp_correct``, shared through
:mod:`idiomlens.interventions.metrics`). Per split: mean loss and accuracy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from .._io import Result
from ..data.align import AlignedExample
from ..data.batching import Batch
from ..data.example import IdiomExample
from ..engine import Collector, collect, prepare, run_meta
from .metrics import sentence_loss_mask, word_metrics, word_spans

__all__ = ["AwarenessResult", "idiom_awareness", "awareness_collector"]


@dataclass
class AwarenessResult(Result):
    """Per-example loss and last-word prediction, with the split each example came from.

    Attributes:
        ids: example ids (split by split, corpus order within a split).
        splits: split names, in the order given.
        split_index: ``[example]`` index into ``splits``.
        loss: ``[example]`` mean next-token loss over the sentence (nats).
        nwp_correct: ``[example]`` greedy full-word prediction of the last idiom word.
        logprob: ``[example]`` ``log P(w | prompt)`` of the last idiom word.
    """

    ids: tuple[str, ...]
    splits: tuple[str, ...]
    split_index: Int[Tensor, " example"]
    loss: Float[Tensor, " example"]
    nwp_correct: Bool[Tensor, " example"]
    logprob: Float[Tensor, " example"]
    meta: dict[str, Any] = field(default_factory=dict)

    per_example: ClassVar[tuple[str, ...]] = ("split_index", "loss", "nwp_correct", "logprob")

    def to_dataframe(self) -> Any:
        """One row per example: ``id, split, loss, nwp_correct, logprob``."""
        import pandas as pd

        return pd.DataFrame(
            {
                "id": list(self.ids),
                "split": [self.splits[i] for i in self.split_index.tolist()],
                "loss": self.loss.tolist(),
                "nwp_correct": self.nwp_correct.tolist(),
                "logprob": self.logprob.tolist(),
            }
        )

    def summary(self) -> Any:
        """One row per split: ``split, n, mean_loss, accuracy`` (``NaN`` for an empty split)."""
        import pandas as pd

        onehot = torch.nn.functional.one_hot(self.split_index, len(self.splits)).float()
        n = onehot.sum(0)  # [split]
        return pd.DataFrame(
            {
                "split": list(self.splits),
                "n": n.long().tolist(),
                "mean_loss": (self.loss.float() @ onehot / n).tolist(),
                "accuracy": (self.nwp_correct.float() @ onehot / n).tolist(),
            }
        )

    def plot(self, metric: str = "accuracy", **kwargs: Any) -> Any:
        """One bar per split of ``metric`` (``"accuracy"`` or ``"mean_loss"``; see
        :func:`idiomlens.viz.awareness.plot_awareness`)."""
        from ..viz.awareness import plot_awareness

        return plot_awareness(self, metric=metric, **kwargs)


def awareness_collector(spans: Tensor, desc: str = "awareness") -> Collector:
    """The engine spec of awareness: one full forward per batch; per example the
    sentence loss and the last idiom word's ``logprob`` and greedy correctness.
    ``spans`` are the last-word token spans of the corpus the batches index into."""

    def finish(batch: Batch, state: dict[str, Any], logits: Tensor) -> dict[str, Tensor]:
        word = spans[batch.indices.cpu()].to(batch.tokens.device) + batch.offsets[:, None]
        res = word_metrics(logits, batch.tokens, word, sentence_loss_mask(batch))
        return {m: res[m] for m in ("loss", "nwp_correct", "logprob")}

    return Collector(finish=finish, logits=True, desc=desc)


def idiom_awareness(
    model: Any,
    splits: Mapping[str, Iterable[IdiomExample | AlignedExample]]
    | Iterable[IdiomExample | AlignedExample],
    *,
    batch_tokens: int | None = None,
    progress: bool = True,
) -> AwarenessResult:
    """Sentence loss and greedy last-idiom-word prediction per example and split.

    Args:
        model: a ``HookedTransformer`` with a tokenizer.
        splits: ``{name: corpus}`` (e.g. EPIE ``formal`` / ``formal-literal`` / ``static``),
            or one corpus (its ``name``, else ``"all"``). Each corpus is raw examples or
            examples already aligned by :func:`~idiomlens.align`.
        batch_tokens: padded-token budget per forward (default
            :data:`~idiomlens.engine.DEFAULT_BATCH_TOKENS`).
        progress: show a progress bar.

    >>> from idiomlens.models import tiny_model
    >>> from idiomlens.data import IdiomExample
    >>> res = idiom_awareness(
    ...     tiny_model(), {"fig": [IdiomExample("a", "He spilled the beans.", (3, 20))]},
    ...     progress=False)
    >>> list(res.summary().columns)
    ['split', 'n', 'mean_loss', 'accuracy']
    """
    if not isinstance(splits, Mapping):
        splits = {getattr(splits, "name", None) or "all": splits}
    if not splits:
        raise ValueError("idiom_awareness needs at least one split")
    ids: list[str] = []
    seen: list[AlignedExample] = []
    parts: dict[str, list[Tensor]] = {
        "split_index": [],
        "loss": [],
        "nwp_correct": [],
        "logprob": [],
    }
    for s, (name, corpus) in enumerate(splits.items()):
        aligned = prepare(model, corpus, what=f"idiom_awareness split {name!r}")
        spec = awareness_collector(word_spans(aligned), desc=f"awareness {name}")
        out = collect(model, aligned, spec, batch_tokens=batch_tokens, progress=progress)
        ids += out.ids
        seen += aligned
        parts["split_index"].append(torch.full((len(aligned),), s, dtype=torch.long))
        parts["loss"].append(out["loss"].float())
        parts["nwp_correct"].append(out["nwp_correct"].bool())
        parts["logprob"].append(out["logprob"].float())
    names = tuple(str(k) for k in splits)
    return AwarenessResult(
        ids=tuple(ids),
        splits=names,
        **{m: torch.cat(v) for m, v in parts.items()},
        meta=run_meta(model, seen, splits=list(names), batch_tokens=batch_tokens),
    )
