"""Logit lens of the last idiom word: how early in depth does the model predict it?

For each example, at the last prompt position ``k_1 - 1`` before the last idiom word
``w = t_1 .. t_m`` (METHODS.md, "Ablation"), the residual stream after every stage —
``embed`` (``blocks.0.hook_resid_pre``) and each block's ``hook_resid_post`` — is passed
through the model's final norm and unembedding (nostalgebraist's logit lens; the final
norm is recomputed on each residual, not the clean run's scale), giving
``log P(t_1)`` and the rank of ``t_1`` (0 = top, ties to the smaller token id) at each
depth. The last stage equals the model's own prediction.

Runs on :func:`idiomlens.engine.collect`: one hooked forward per batch that stops after
the last block (no logits over all positions), reading one position per example.

>>> from idiomlens.models import tiny_model
>>> from idiomlens.data import IdiomExample
>>> res = logit_lens(tiny_model(), [IdiomExample("a", "He spilled the beans.", (3, 20))],
...                  progress=False)
>>> res.stages, tuple(res.logprob.shape)
(('embed', 'L0', 'L1'), (1, 3))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .._io import Result
from ..data.batching import Batch
from ..engine import Collector, Site, collect, prepare, run_meta

__all__ = ["LogitLensResult", "logit_lens", "lens_stats"]


@dataclass
class LogitLensResult(Result):
    """Per example and depth: ``log P(t_1)`` and its rank under the logit lens.

    Attributes:
        ids: example ids, corpus order.
        logprob: ``[example, stage]`` log-probability of the last idiom word's first token.
        rank: ``[example, stage]`` its rank (0 = top).
        stages: ``("embed", "L0", ..., "L{n-1}")`` (the residual after each stage).
        meta: provenance.
    """

    ids: tuple[str, ...]
    logprob: Float[Tensor, "example stage"]
    rank: Int[Tensor, "example stage"]
    stages: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    per_example: ClassVar[tuple[str, ...]] = ("logprob", "rank")

    def summary(self) -> Any:
        """One row per stage: mean log-prob and probability of ``t_1``, top-1 accuracy."""
        import pandas as pd

        return pd.DataFrame(
            {
                "stage": list(self.stages),
                "logprob": self.logprob.mean(0).tolist(),
                "prob": self.logprob.exp().mean(0).tolist(),
                "top1": (self.rank == 0).float().mean(0).tolist(),
                "mean_rank": self.rank.float().mean(0).tolist(),
            }
        )

    def to_dataframe(self) -> Any:
        """Long format: ``id, stage, logprob, rank``."""
        import pandas as pd

        n, s = self.logprob.shape
        return pd.DataFrame(
            {
                "id": [i for i in self.ids for _ in range(s)],
                "stage": list(self.stages) * n,
                "logprob": self.logprob.reshape(-1).tolist(),
                "rank": self.rank.reshape(-1).tolist(),
            }
        )

    def plot(self, **kwargs: Any) -> Any:
        """Mean probability of the word across depth (:mod:`idiomlens.viz.followups`)."""
        from ..viz.followups import plot_logit_lens

        return plot_logit_lens(self, **kwargs)


def lens_stats(
    logits: Float[Tensor, "batch d_vocab"], target: Int[Tensor, " batch"]
) -> tuple[Float[Tensor, " batch"], Int[Tensor, " batch"]]:
    """``log P(target)`` and its rank (ties to the smaller token id) from one row of logits.

    >>> lp, rank = lens_stats(torch.tensor([[0.0, 1.0, 1.0]]), torch.tensor([2]))
    >>> rank.tolist()
    [1]
    """
    logits = logits.float()
    t = logits.gather(-1, target[:, None])
    vocab = torch.arange(logits.shape[-1], device=logits.device)[None, :]
    ahead = (logits > t) | ((logits == t) & (vocab < target[:, None]))
    return (t - torch.logsumexp(logits, -1, keepdim=True))[:, 0], ahead.sum(-1)


def _stage_hooks(n_layers: int) -> list[str]:
    return ["blocks.0.hook_resid_pre"] + [f"blocks.{la}.hook_resid_post" for la in range(n_layers)]


def logit_lens(
    model: Any, corpus: Any, *, batch_tokens: int | None = None, progress: bool = True
) -> LogitLensResult:
    """Logit lens of the last idiom word at every depth (see the module docstring).

    Args:
        model: a ``HookedTransformer``.
        corpus: examples with their idiom spans.
        batch_tokens: padded-token budget per forward.
        progress: show a progress bar.
    """
    from ..interventions.metrics import word_spans

    examples = list(corpus)
    aligned = prepare(model, examples, what="logit_lens")
    spans = word_spans(aligned, examples)  # [example, 2], unpadded
    hooks = _stage_hooks(model.cfg.n_layers)

    def setup(batch: Batch) -> dict[str, Any]:
        k1 = spans[batch.indices.cpu(), 0].to(batch.tokens.device) + batch.offsets
        rows = torch.arange(batch.size, device=batch.tokens.device)
        return {"_pos": k1 - 1, "_target": batch.tokens[rows, k1], "_resid": {}}

    def read(stage: int) -> Any:
        def reduce(resid: Tensor, batch: Batch, state: dict) -> None:
            rows = torch.arange(batch.size, device=resid.device)
            state["_resid"][stage] = resid[rows, state["_pos"]]  # [batch, d_model]

        return reduce

    def finish(batch: Batch, state: dict, logits: Any) -> dict[str, Tensor]:
        stats = []
        for stage in range(len(hooks)):
            x = state["_resid"][stage][:, None, :]  # [batch, 1, d_model]
            norm = getattr(model, "ln_final", None)  # absent without normalisation
            lens = model.unembed(norm(x) if norm is not None else x)[:, 0]  # [batch, d_vocab]
            stats.append(lens_stats(lens, state["_target"]))
        return {
            "logprob": torch.stack([s[0] for s in stats], 1),
            "rank": torch.stack([s[1] for s in stats], 1),
        }

    spec = Collector(
        sites=[Site(name, read(i)) for i, name in enumerate(hooks)],
        setup=setup,
        finish=finish,
        desc="logit lens",
    )
    out = collect(model, aligned, spec, batch_tokens=batch_tokens, progress=progress)
    return LogitLensResult(
        ids=out.ids,
        logprob=out["logprob"],
        rank=out["rank"],
        stages=("embed", *(f"L{la}" for la in range(model.cfg.n_layers))),
        meta=run_meta(model, aligned, analysis="logit_lens"),
    )
