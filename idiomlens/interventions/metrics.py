"""Per-example language-model metrics on the last idiom word (METHODS.md, "Ablation").

The target is the last whitespace-delimited word ``w`` of the idiom span, with its
leading space, as tokens ``t_1 .. t_m`` at positions ``k_1 .. k_m``; the prompt is every
token before ``k_1`` and its last position is ``k_1 - 1``. From one teacher-forced
forward:

- ``logit``   = logit of ``t_1`` at ``k_1 - 1``;
- ``logprob`` = ``log P(w | prompt) = sum_j log P(t_j | x_{<k_j})``;
- ``loss``    = mean next-token cross-entropy over the sentence: every prediction
  ``x_p -> x_{p+1}`` with both real (BOS -> first token included);
- ``nwp_correct`` = greedy decoding of ``m`` tokens from the prompt gives ``w``. Greedy
  reproduces ``w`` iff at each of the ``m`` positions the argmax equals the next token of
  ``w`` under teacher forcing (step ``j`` sees exactly the prefix ``prompt + t_1..t_{j-1}``
  once the previous steps matched), so one forward suffices; argmax ties go to the
  smaller token id (``torch.argmax``);
- ``rank`` = rank of ``t_1`` at ``k_1 - 1`` (0 = top): the number of tokens with a larger
  logit, plus those with an equal logit and a smaller id, so ``rank == 0`` iff the
  argmax is ``t_1``.

The functions here are pure tensor functions; runners supply the logits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..data.align import AlignedExample
from ..data.batching import Batch
from ..data.example import IdiomExample
from ..engine import forward

__all__ = [
    "last_word_tokens",
    "word_spans",
    "next_token_stats",
    "word_metrics",
    "sentence_loss_mask",
    "run_word_metrics",
    "METRICS",
]

#: Names of the per-example metrics, in result order.
METRICS = ("logit", "logprob", "loss", "nwp_correct", "rank")

_LAST_WORD = re.compile(r"\S+$")


def last_word_tokens(
    example: AlignedExample, char_span: tuple[int, int] | None = None
) -> tuple[int, int]:
    """Inclusive token positions ``(k_1, k_m)`` of the idiom's last word.

    ``char_span`` defaults to the example's own (``example.char_span``, recorded by
    :func:`~idiomlens.align`). The last word is the last whitespace-delimited word of
    ``text[a:b]``; its tokens are
    those whose character offsets overlap it (so a leading-space token like ``" beans"``
    is included). Raises ``ValueError`` naming the example when the word has no prompt
    before it (first token of a text without BOS).

    >>> from idiomlens.data import IdiomExample, align
    >>> from idiomlens.models import tiny_tokenizer
    >>> ex = IdiomExample("a", "He spilled the beans.", (3, 20))
    >>> [al] = align([ex], tiny_tokenizer())
    >>> k1, km = last_word_tokens(al)
    >>> al.text[al.offsets[k1][0] : al.offsets[km][1]]
    ' beans'
    """
    if char_span is None:
        char_span = example.char_span
    if char_span is None:
        raise ValueError(
            f"example {example.id!r} has no character span (built from tokens alone); "
            "align it with idiomlens.align to get one"
        )
    a, b = char_span
    idiom = example.text[a:b].rstrip()
    match = _LAST_WORD.search(idiom)
    if match is None:
        raise ValueError(f"example {example.id!r}: the idiom span {char_span} has no word")
    wa, wb = a + match.start(), a + len(idiom)
    inside = [
        i
        for i in range(example.p0, len(example.tokens))
        if example.offsets[i][0] < wb and example.offsets[i][1] > wa
    ]
    if not inside:
        raise ValueError(f"example {example.id!r}: no token covers the last idiom word")
    if inside[0] == 0:
        raise ValueError(
            f"example {example.id!r}: the last idiom word is the first token and there is no "
            "BOS, so it has no prompt to predict it from"
        )
    return inside[0], inside[-1]


def next_token_stats(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]
) -> tuple[Float[Tensor, "batch pos"], Bool[Tensor, "batch pos"]]:
    """``log P(x_{p+1} | x_{<=p})`` and ``argmax_p == x_{p+1}`` at every position.

    The last position has no next token; it gets the values for ``x_0`` and must be masked.
    Uses ``logsumexp`` + gather, so no second ``[batch, pos, d_vocab]`` tensor is built.
    """
    nxt = torch.roll(tokens, -1, dims=1)
    logits = logits.float()
    target = logits.gather(-1, nxt[..., None])[..., 0]
    logprob = target - torch.logsumexp(logits, dim=-1)
    return logprob, logits.argmax(-1) == nxt


def word_metrics(
    logits: Float[Tensor, "batch pos d_vocab"],
    tokens: Int[Tensor, "batch pos"],
    word_spans: Int[Tensor, "batch 2"],
    loss_mask: Bool[Tensor, "batch pos"],
) -> dict[str, Tensor]:
    """The :data:`METRICS` of every row (see the module docstring).

    Args:
        logits: model output.
        tokens: the input tokens.
        word_spans: ``(k_1, k_m)`` inclusive positions of the target word per row.
        loss_mask: ``True`` at positions ``p`` whose prediction of ``x_{p+1}`` counts in the
            sentence loss (both real).

    Returns:
        ``{"logit", "logprob", "loss": float [batch], "nwp_correct": bool [batch],
        "rank": int [batch]}``.
    """
    logprob_next, correct_next = next_token_stats(logits, tokens)
    pos = torch.arange(tokens.shape[1], device=tokens.device)[None, :]
    k1, km = word_spans[:, :1], word_spans[:, 1:]
    predicts_word = (pos >= k1 - 1) & (pos <= km - 1)  # positions whose next token is in w
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    last = logits[rows, word_spans[:, 0] - 1].float()  # [batch, d_vocab] at k_1 - 1
    t1 = tokens[rows, word_spans[:, 0]]
    t1_logit = last.gather(-1, t1[:, None])
    vocab = torch.arange(last.shape[-1], device=last.device)[None, :]
    ahead = (last > t1_logit) | ((last == t1_logit) & (vocab < t1[:, None]))
    n_loss = loss_mask.sum(1).clamp(min=1)
    return {
        "logit": t1_logit[:, 0],
        "logprob": torch.where(predicts_word, logprob_next, 0.0).sum(1),
        "loss": -torch.where(loss_mask, logprob_next, 0.0).sum(1) / n_loss,
        "nwp_correct": (correct_next | ~predicts_word).all(1),
        "rank": ahead.sum(-1),
    }


def sentence_loss_mask(batch: Batch) -> Bool[Tensor, "batch pos"]:
    """Positions ``p`` whose prediction of ``x_{p+1}`` is scored: both real."""
    real = batch.real_mask()
    nxt = torch.zeros_like(real)
    nxt[:, :-1] = real[:, 1:]
    return real & nxt


def run_word_metrics(
    model: Any,
    tokens: Tensor,
    spans: Tensor,
    loss_mask: Tensor,
    hooks: list | None = None,
    **forward_kwargs: Any,
) -> dict[str, Tensor]:
    """:func:`word_metrics` of one :func:`~idiomlens.engine.forward` of ``tokens`` (with
    ``hooks``, if any)."""
    with torch.no_grad():
        logits = forward(model, tokens, hooks or [], logits=True, **forward_kwargs)
    return word_metrics(logits, tokens, spans, loss_mask)


def word_spans(
    aligned: Sequence[AlignedExample], examples: Sequence[IdiomExample] | None = None
) -> Tensor:
    """``[example, 2]`` inclusive token positions of each aligned example's last idiom word.

    The character spans come from the aligned examples themselves, or from the
    ``examples`` they were aligned from (matched by ``.index``) when given.
    """
    return torch.tensor(
        [
            last_word_tokens(a, examples[a.index].span if examples is not None else None)
            for a in aligned
        ],
        dtype=torch.long,
    ).reshape(-1, 2)
