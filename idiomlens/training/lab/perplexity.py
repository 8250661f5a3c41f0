"""Perplexity of texts under a model: per text, overall, and per token.

Each text is BOS (when the model prepends one) + its tokens; every token after the
first is predicted from the ones before it, with cross-entropy
``nll_t = -log p(x_t | x_<t)`` in nats. A text's perplexity is ``exp(mean_t nll_t)``;
the overall ``mean`` is ``exp`` of the mean over all predicted tokens of all texts
(token-weighted). Texts are batched right-padded; padding is never predicted or counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

from ..._io import Result
from .data import encode_texts

__all__ = ["Perplexity", "perplexity"]


@dataclass
class Perplexity(Result):
    """Perplexities of ``ids`` (one per text, in input order).

    Attributes:
        per_text: ``[text]`` ``exp`` of each text's mean next-token cross-entropy.
        n_tokens_per_text: ``[text]`` predicted tokens per text.
        nll: ``[text, pos]`` per-token cross-entropy (nats) of predicting token
            ``pos + 1``; NaN where ``mask`` is False (padding). Only with ``per_token``.
        mask: ``[text, pos]`` True at real predicted tokens.
        mean: ``exp`` of the mean cross-entropy over every predicted token.
        n_tokens: predicted tokens in total.
    """

    ids: tuple[str, ...]
    per_text: Float[Tensor, " text"]
    n_tokens_per_text: Tensor
    nll: Float[Tensor, "text pos"] | None = None
    mask: Bool[Tensor, "text pos"] | None = None
    mean: float = float("nan")
    n_tokens: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    per_example: ClassVar[tuple[str, ...]] = ("per_text", "n_tokens_per_text")

    @property
    def max(self) -> float:
        """The largest per-text perplexity."""
        return float(self.per_text.max())

    @property
    def min(self) -> float:
        """The smallest per-text perplexity."""
        return float(self.per_text.min())

    @property
    def per_token(self) -> Float[Tensor, "text pos"] | None:
        """``[text, pos]`` per-token perplexity ``exp(nll)`` (NaN at padding)."""
        return None if self.nll is None else self.nll.exp()

    def to_dataframe(self) -> Any:
        import pandas as pd

        return pd.DataFrame(
            {
                "id": self.ids,
                "perplexity": self.per_text.tolist(),
                "n_tokens": self.n_tokens_per_text.tolist(),
            }
        )


@torch.no_grad()
def perplexity(
    model: Any, texts: str | list[str], *, per_token: bool = False, batch_size: int = 32
) -> Perplexity:
    """Perplexity of each text and of all of them under ``model`` (see the module docstring).

    >>> from idiomlens.models import tiny_model
    >>> ppl = perplexity(tiny_model(), ["He spilled the beans.", "Break a leg."], per_token=True)
    >>> ppl.n_tokens == int(ppl.mask.sum()), ppl.min <= ppl.mean <= ppl.max
    (True, True)
    """
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts or model.tokenizer is None:
        raise ValueError("perplexity: needs at least one text and a model with a tokenizer")
    tokens, mask = encode_texts(model.tokenizer, texts, where="texts")
    if not model.cfg.default_prepend_bos:
        tokens, mask = tokens[:, 1:], mask[:, 1:]
        mask[:, 0] = False
    short = [i for i, n in enumerate(mask.sum(1).tolist()) if n == 0]
    if short:
        raise ValueError(
            f"perplexity: text {short[0]} ({texts[short[0]]!r}) has no token to predict"
        )
    device = next(model.parameters()).device
    nll = torch.full(mask[:, 1:].shape, float("nan"))
    for start in range(0, len(texts), batch_size):
        rows = slice(start, start + batch_size)
        width = int(mask[rows].sum(1).max()) + 1 + (0 if model.cfg.default_prepend_bos else 1)
        width = min(width, tokens.shape[1])
        batch = tokens[rows, :width].to(device)
        logits = model(batch[:, :-1]).float()
        ce = F.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none").cpu()
        nll[rows, : width - 1] = torch.where(mask[rows, 1:width], ce, float("nan"))
    real = mask[:, 1:]
    zeroed = torch.where(real, nll, 0.0)
    counts = real.sum(1)
    per_text = (zeroed.sum(1) / counts).exp()
    total = int(counts.sum())
    mean = float((zeroed.sum() / total).exp())
    ids = tuple(str(i) for i in range(len(texts)))
    meta = {"model_name": str(getattr(model.cfg, "model_name", ""))}
    return Perplexity(
        ids,
        per_text,
        counts,
        nll if per_token else None,
        real if per_token else None,
        mean,
        total,
        meta,
    )
