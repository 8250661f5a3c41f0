"""Heads planted by hand rank where they should."""

from __future__ import annotations

import pytest
import torch

from idiomlens.data import AlignedExample
from idiomlens.models import tiny_model
from idiomlens.scoring import detect_heads, score_heads

IDIOM_TOKENS = range(200, 240)  # idiom words never occur outside idioms
IDIOM_HEAD, SINK_HEAD = 2, 1  # both in layer 0


def planted_corpus(n: int, seed: int) -> list[AlignedExample]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        T = int(torch.randint(8, 20, (1,), generator=gen))
        n_idiom = int(torch.randint(1, 5, (1,), generator=gen))
        s = int(torch.randint(1, T - n_idiom + 1, (1,), generator=gen))
        toks = torch.randint(1, 150, (T,), generator=gen)
        toks[s : s + n_idiom] = torch.randint(200, 240, (n_idiom,), generator=gen)
        toks[0] = 0  # BOS
        span = (s, s + n_idiom - 1)
        out.append(AlignedExample(f"p-{i}", tuple(toks.tolist()), span, 1, "figurative", i, (), ""))
    return out


@pytest.fixture(scope="module")
def planted_model():
    """Layer 0: head 2 attends from every query to the idiom tokens (token identity);
    head 1 is a BOS sink (every query attends to BOS)."""
    model = tiny_model(n_layers=2, n_heads=4, normalization_type=None, seed=0)
    alpha = 10.0
    with torch.no_grad():
        model.W_E[:, :3] = 0
        model.W_pos[:, :3] = 0
        model.W_E[list(IDIOM_TOKENS), 0] = 1  # dim 0: "is an idiom token"
        model.W_E[:, 1] = 1  # dim 1: constant
        model.W_E[0, 2] = 1  # dim 2: "is BOS"
        attn = model.blocks[0].attn
        for head, key_dim in ((IDIOM_HEAD, 0), (SINK_HEAD, 2)):
            for p in (attn.W_Q[head], attn.W_K[head], attn.b_Q[head], attn.b_K[head]):
                p.zero_()
            attn.W_Q[head][1, 0] = alpha  # every query asks the same question
            attn.W_K[head][key_dim, 0] = alpha  # only idiom (BOS) keys answer
    return model


def test_planted_idiom_head_ranks_first(planted_model):
    corpus = planted_corpus(40, seed=0)
    res = score_heads(planted_model, corpus, kind="idiom", progress=False)
    assert res.top(1)[0][:2] == (0, IDIOM_HEAD)
    # and it is also the clear top idiom->idiom head by pattern detection
    det = detect_heads(planted_model, corpus, "idiom_to_idiom", rows="marked")
    assert det.top(1)[0][:2] == (0, IDIOM_HEAD)
    assert det.mean()[0, IDIOM_HEAD] > 0.9


def test_bos_sink_is_not_a_literal_head(planted_model):
    corpus = planted_corpus(40, seed=1)
    res = score_heads(planted_model, corpus, kind="literal", progress=False)
    ranking = [(layer, head) for layer, head, _ in res.top(8)]
    assert ranking.index((0, SINK_HEAD)) >= 4  # bottom half of the 8 heads
    # BOS absorbs its attention: no literal pair gets any
    assert res.mean("mean")[0, SINK_HEAD] < 1e-6
