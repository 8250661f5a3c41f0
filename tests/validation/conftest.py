"""Fixtures: a tiny model with two planted causal heads (all other heads output zero)."""

from __future__ import annotations

import pytest
import torch

from idiomlens.data import align
from idiomlens.interventions.metrics import word_spans
from idiomlens.models import tiny_model

#: The planted heads, in different layers, of equal strength.
PLANTED = [(0, 3), (1, 5)]
N_LAYERS, N_HEADS = 2, 8
BOOST = 2.0


def last_word_targets(model, corpus) -> list[int]:
    """First token ``t_1`` of each example's last idiom word."""
    aligned = align(corpus, model)
    spans = word_spans(aligned, list(corpus))
    return sorted({aligned[i].tokens[int(spans[i, 0])] for i in range(len(aligned))})


def planted_model(corpus, heads=PLANTED):
    """Attention-only, no LayerNorm, 2 layers x 8 heads. Every head's ``W_O`` is zero
    except the planted heads', which write a constant 1 into residual dimension 0 (``W_V
    = 0``, ``b_V = e_0``, ``W_O[h][0, 0] = 1``); dimension 0 is otherwise empty (embeddings
    zeroed there) and the unembedding reads it only into the first token of every last
    idiom word of ``corpus`` (``W_U[0, t_1] = BOOST``). So exactly the planted heads raise
    the logit of the last idiom word, each by ``BOOST``, and no other head changes anything."""
    model = tiny_model(
        n_layers=N_LAYERS, n_heads=N_HEADS, d_head=4, attn_only=True, normalization_type=None
    )
    targets = last_word_targets(model, corpus)
    with torch.no_grad():
        model.W_E[:, 0] = 0
        model.W_pos[:, 0] = 0
        model.W_U[0, :] = 0
        model.W_U[0, targets] = BOOST
        for block in model.blocks:
            block.attn.W_O.zero_()
        for layer, head in heads:
            attn = model.blocks[layer].attn
            attn.W_V[head].zero_()
            attn.b_V[head].zero_()
            attn.b_V[head][0] = 1.0
            attn.W_O[head][0, 0] = 1.0
    return model


@pytest.fixture(scope="session")
def planted(corpus):
    return planted_model(corpus)
