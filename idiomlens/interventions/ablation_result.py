"""The result of :func:`~idiomlens.interventions.ablation.ablate_heads`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from .._io import Result

__all__ = ["AblationResult"]


@dataclass
class AblationResult(Result):
    """Per-example, per-condition ablation metrics (METHODS.md, "Ablation").

    Attributes:
        ids: example ids, corpus order.
        conditions: condition names, in the order given.
        head_masks: ``[condition, layer, head]`` which heads each condition ablates.
        logit_diff: ``[example, condition]`` clean - ablated logit of ``t_1`` at the last
            prompt position (positive: the heads supported the word).
        logprob_diff: clean - ablated ``log P(w | prompt)`` over all tokens of ``w``.
        loss_diff: ablated - clean mean next-token loss over the sentence.
        nwp_correct: ablated greedy next-word prediction of ``w`` is right (bool).
        rank: ablated rank of ``t_1`` (0 = top).
        clean_logit, clean_logprob, clean_loss, clean_nwp_correct, clean_rank: ``[example]``
            the same quantities without ablation.
        n_word_tokens: ``[example]`` number of tokens ``m`` of the target word.
        kind: ``"zero"``, ``"mean"`` or ``"resample"``.
        positions: ``"all"``, ``"idiom"`` or ``"literal"``.
        seed: the resampling seed.
    """

    ids: tuple[str, ...]
    conditions: tuple[str, ...]
    head_masks: Bool[Tensor, "condition layer head_index"]
    logit_diff: Float[Tensor, "example condition"]
    logprob_diff: Float[Tensor, "example condition"]
    loss_diff: Float[Tensor, "example condition"]
    nwp_correct: Bool[Tensor, "example condition"]
    rank: Int[Tensor, "example condition"]
    clean_logit: Float[Tensor, " example"]
    clean_logprob: Float[Tensor, " example"]
    clean_loss: Float[Tensor, " example"]
    clean_nwp_correct: Bool[Tensor, " example"]
    clean_rank: Int[Tensor, " example"]
    n_word_tokens: Int[Tensor, " example"]
    kind: str = "zero"
    positions: str = "all"
    seed: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    per_example: ClassVar[tuple[str, ...]] = (
        "logit_diff",
        "logprob_diff",
        "loss_diff",
        "nwp_correct",
        "rank",
        "clean_logit",
        "clean_logprob",
        "clean_loss",
        "clean_nwp_correct",
        "clean_rank",
        "n_word_tokens",
    )

    def __len__(self) -> int:
        return len(self.ids)

    def heads(self, condition: str) -> list[tuple[int, int]]:
        """The ``(layer, head)`` pairs a condition ablates."""
        if condition not in self.conditions:
            raise KeyError(f"unknown condition {condition!r}; conditions are {self.conditions}")
        mask = self.head_masks[self.conditions.index(condition)]
        return [(int(layer), int(head)) for layer, head in mask.nonzero().tolist()]

    def to_dataframe(self) -> Any:
        """Long format: one row per ``(id, condition)`` with every metric and the clean values."""
        import pandas as pd

        n_ex, n_c = self.logit_diff.shape
        e = torch.arange(n_ex).repeat_interleave(n_c)
        c = torch.arange(n_c).repeat(n_ex)
        cols: dict[str, Any] = {
            "id": [self.ids[i] for i in e.tolist()],
            "condition": [self.conditions[i] for i in c.tolist()],
        }
        for name in ("logit_diff", "logprob_diff", "loss_diff", "nwp_correct", "rank"):
            cols[name] = getattr(self, name).reshape(-1).tolist()
        for name in ("clean_nwp_correct", "clean_rank", "clean_logprob", "clean_loss"):
            cols[name] = getattr(self, name)[e].tolist()
        return pd.DataFrame(cols)

    def summary(self) -> Any:
        """One row per condition: mean diffs, ablated and clean accuracy, accuracy drop.

        ``accuracy`` is the fraction of examples whose last idiom word is still predicted
        greedily after ablation; ``accuracy_drop = clean_accuracy - accuracy``.
        """
        import pandas as pd

        clean_acc = float(self.clean_nwp_correct.float().mean()) if len(self) else float("nan")
        acc = self.nwp_correct.float().mean(0)
        return pd.DataFrame(
            {
                "condition": list(self.conditions),
                "n": len(self),
                "logit_diff": self.logit_diff.mean(0).tolist(),
                "logprob_diff": self.logprob_diff.mean(0).tolist(),
                "loss_diff": self.loss_diff.mean(0).tolist(),
                "accuracy": acc.tolist(),
                "clean_accuracy": clean_acc,
                "accuracy_drop": (clean_acc - acc).tolist(),
                "mean_rank": self.rank.float().mean(0).tolist(),
            }
        )

    def plot(self, metric: str = "logit_diff", **kwargs: Any) -> Any:
        """A plotly figure (see :func:`idiomlens.viz.ablation.plot_ablation`)."""
        from ..viz.ablation import plot_ablation

        return plot_ablation(self, metric=metric, **kwargs)
