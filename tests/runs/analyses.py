"""Small analyses for the run-engine tests: per-example statistics of a tiny model."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from idiomlens._io import Result
from idiomlens.data import align, iter_batches

#: Calls per analysis name (how tests see whether a run recomputed).
CALLS: Counter[str] = Counter()


@dataclass
class MeanLogit(Result):
    """Per example: mean logit over real positions, and its max, times ``scale``."""

    ids: tuple[str, ...]
    values: Tensor
    maxima: Tensor
    scale: float = 1.0
    per_example: ClassVar[tuple[str, ...]] = ("values", "maxima")


def mean_logit(
    model, corpus, *, scale: float = 1.0, batch_tokens=None, progress=False
) -> MeanLogit:
    """Reference analysis: batched forward passes, scattered back to corpus order."""
    CALLS["mean_logit"] += 1
    aligned = align(corpus, model)
    values = torch.zeros(len(aligned))
    maxima = torch.zeros(len(aligned))
    with torch.no_grad():
        for batch in iter_batches(aligned, batch_tokens=batch_tokens or 8192):
            logits = model(batch.tokens)  # [batch, pos, vocab]
            mask = batch.real_mask().unsqueeze(-1).float()
            per_pos = logits.mean(-1, keepdim=True) * mask
            values[batch.indices] = (per_pos.sum((1, 2)) / mask.sum((1, 2))) * scale
            maxima[batch.indices] = logits.masked_fill(mask == 0, -1e9).amax((1, 2)) * scale
    return MeanLogit(ids=aligned.ids, values=values, maxima=maxima, scale=scale)


class Crash(RuntimeError):
    """Raised by :func:`crashing` to simulate a process dying mid-run."""


def crashing(after: int):
    """``mean_logit`` that raises on its call number ``after`` (counting from 0)."""

    def fn(model, corpus, *, scale: float = 1.0, batch_tokens=None, progress=False) -> MeanLogit:
        if CALLS["crashing"] >= after:
            raise Crash("simulated crash")
        CALLS["crashing"] += 1
        return mean_logit(model, corpus, scale=scale, batch_tokens=batch_tokens)

    fn.__qualname__ = "mean_logit"  # same name as mean_logit, so both share a run key
    fn.__module__ = mean_logit.__module__
    return fn


def flaky_oom(fail_above: int):
    """``mean_logit`` that raises a CUDA-style OOM RuntimeError while batch_tokens > fail_above."""

    def fn(model, corpus, *, scale: float = 1.0, batch_tokens=None, progress=False) -> MeanLogit:
        CALLS["oom_attempts"] += 1
        if batch_tokens is None or batch_tokens > fail_above:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        CALLS[f"budget={batch_tokens}"] += 1
        return mean_logit(model, corpus, scale=scale, batch_tokens=batch_tokens)

    return fn
