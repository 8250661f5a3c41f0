"""Sampling from a ``HookedTransformer``: greedy, temperature, top-k and nucleus, batched.

Prompts of different lengths share one right-padded buffer; each row's next token is
read at its own last position (causal attention makes the padding after it invisible),
so a batch gives each prompt the same logits it would get alone. Every draw comes from
one local ``torch.Generator`` (``seed``), never the global RNG.

Selection, applied to the next-token logits ``z`` in this order:

- ``temperature == 0``: ``argmax z`` (greedy; ``top_k`` / ``top_p`` are irrelevant);
- ``z / temperature``; ``top_k``: keep the ``k`` largest (ties at the k-th value kept);
- ``top_p``: keep the smallest set of most likely tokens whose probability reaches ``p``;
- draw from the softmax of what is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..._io import Result
from .data import special_ids

__all__ = ["Sample", "sample", "next_token_probs"]


@dataclass
class Sample(Result):
    """Prompts and their continuations.

    Attributes:
        tokens: ``[batch, pos]`` prompt + new tokens, right-padded with the pad id.
        new_tokens: ``[batch, max_new_tokens]`` the generated tokens alone.
        prompt_lengths: ``[batch]`` tokens of each prompt (BOS included when prepended).
        text: decoded prompt + continuation per row (special tokens skipped).
        completion: decoded continuation per row.
        meta: the sampling parameters.
    """

    tokens: Int[Tensor, "batch pos"]
    new_tokens: Int[Tensor, "batch new"]
    prompt_lengths: Int[Tensor, " batch"]
    text: tuple[str, ...] = ()
    completion: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    per_example: ClassVar[tuple[str, ...]] = ("tokens", "new_tokens", "prompt_lengths")

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(str(i) for i in range(self.tokens.shape[0]))


def next_token_probs(
    logits: Float[Tensor, "batch d_vocab"],
    *,
    temperature: float | int,
    top_k: int | None = None,
    top_p: float | None = None,
) -> Float[Tensor, "batch d_vocab"]:
    """The distribution a token is drawn from (one-hot of the argmax at temperature 0).

    >>> next_token_probs(torch.tensor([[0.0, 1.0, 3.0]]), temperature=1.0, top_k=2).gt(0).tolist()
    [[False, True, True]]
    """
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    z = logits.float() / temperature
    if top_k is not None:
        kth = z.topk(min(top_k, z.shape[-1]), dim=-1).values[:, -1:]
        z = z.masked_fill(z < kth, float("-inf"))
    probs = z.softmax(-1)
    if top_p is not None:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(-1) - sorted_p  # probability of the more likely tokens
        drop_sorted = before >= top_p
        drop_sorted[:, 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def _prompt_rows(model: Any, prompt: Any) -> list[list[int]]:
    if isinstance(prompt, Tensor):
        return [prompt.tolist()] if prompt.ndim == 1 else prompt.tolist()
    if isinstance(prompt, str):
        prompt = [prompt]
    prompt = list(prompt)
    if prompt and all(isinstance(p, int) for p in prompt):
        return [prompt]
    if all(isinstance(p, str) for p in prompt):
        tok = model.tokenizer
        if tok is None:
            raise ValueError("sample: text prompts need a model with a tokenizer; pass token ids")
        bos = [special_ids(tok)[0]] if model.cfg.default_prepend_bos else []
        return [bos + tok(p, add_special_tokens=False)["input_ids"] for p in prompt]
    return [list(map(int, p)) for p in prompt]


@torch.no_grad()
def sample(
    model: Any,
    prompt: str | list[str] | list[int] | list[list[int]] | Tensor,
    *,
    max_new_tokens: int,
    temperature: float | int = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
) -> Sample:
    """Continue each prompt by ``max_new_tokens`` tokens.

    Args:
        model: a ``HookedTransformer``.
        prompt: a string, a list of strings (tokenised with BOS when the model prepends
            one), one list of token ids, a list of them, or a ``[batch, pos]`` tensor.
        temperature: 0 for greedy decoding. top_k, top_p: see the module docstring.
        seed: seed of the local generator (None: a fresh random seed).

    >>> from idiomlens.models import tiny_model
    >>> s = sample(tiny_model(), ["He spilled", "The"], max_new_tokens=3, temperature=0)
    >>> tuple(s.new_tokens.shape), len(s.completion)
    ((2, 3), 2)
    """
    if (
        temperature < 0
        or (top_k is not None and top_k < 1)
        or (top_p is not None and not 0 < top_p <= 1)
    ):
        raise ValueError(
            f"sample: need temperature >= 0, top_k >= 1, 0 < top_p <= 1; got {temperature}, {top_k}, {top_p}"
        )
    rows = _prompt_rows(model, prompt)
    if not rows or min(map(len, rows)) == 0:
        raise ValueError("sample: every prompt needs at least one token")
    device = next(model.parameters()).device
    pad = special_ids(model.tokenizer)[1] if model.tokenizer is not None else 0
    lengths = torch.tensor([len(r) for r in rows], device=device)
    width = int(lengths.max()) + max_new_tokens
    if model.cfg.positional_embedding_type == "standard" and width - 1 > model.cfg.n_ctx:
        raise ValueError(
            f"sample: longest prompt + max_new_tokens = {width} tokens > n_ctx={model.cfg.n_ctx}"
        )
    buf = torch.full((len(rows), width), pad, dtype=torch.long, device=device)
    for i, r in enumerate(rows):
        buf[i, : len(r)] = torch.tensor(r, device=device)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed) if seed is not None else gen.seed()
    batch = torch.arange(len(rows), device=device)
    new = torch.zeros(len(rows), max_new_tokens, dtype=torch.long, device=device)
    for t in range(max_new_tokens):
        logits = model(buf[:, : int(lengths.max())])[batch, lengths - 1]
        probs = next_token_probs(logits, temperature=temperature, top_k=top_k, top_p=top_p)
        token = (
            probs.argmax(-1)
            if temperature == 0
            else torch.multinomial(probs, 1, generator=gen)[:, 0]
        )
        buf[batch, lengths] = token
        new[:, t] = token
        lengths = lengths + 1
    tok = model.tokenizer
    text = (
        tuple(tok.decode(buf[i, : int(lengths[i])], skip_special_tokens=True) for i in batch)
        if tok
        else ()
    )
    completion = tuple(tok.decode(new[i], skip_special_tokens=True) for i in batch) if tok else ()
    meta = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed}
    return Sample(buf.cpu(), new.cpu(), (lengths - max_new_tokens).cpu(), text, completion, meta)
