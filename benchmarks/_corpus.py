"""Random-token sentences with an idiom span, shared by the benchmarks (no tokenizer)."""

from __future__ import annotations

import torch

from idiomlens.data import AlignedExample


def random_sentences(
    n: int, seed: int = 0, *, vocab: int = 50304, end_margin: int = 1
) -> list[AlignedExample]:
    """``n`` sentences of 15-60 tokens (token 0 first), each with an idiom span of 1-6
    tokens that ends at least ``end_margin`` tokens before the sentence does."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        T = int(torch.randint(15, 61, (1,), generator=gen))
        toks = (0, *torch.randint(1, vocab, (T - 1,), generator=gen).tolist())
        s = int(torch.randint(1, T - end_margin, (1,), generator=gen))
        e = min(T - end_margin, s + int(torch.randint(0, 6, (1,), generator=gen)))
        out.append(AlignedExample(f"s-{i}", toks, (s, e), 1, "figurative", i, (), ""))
    return out
