"""Length-matched clean/corrupted pairs for patching."""

from __future__ import annotations

import pytest
import torch

from idiomlens.data import IdiomCorpus, align
from idiomlens.interventions import PatchingPairs, make_patching_pairs, patch_heads
from idiomlens.interventions.pairs import default_paraphrase_id
from tests.conftest import make_example

ROWS = [
    ("formal-000001", "He kicked the bucket.", "kicked the bucket"),  # 9 tokens
    ("trans-000001", "He kicked the ball.", "kicked the ball"),  # 9: equal
    ("formal-000002", "She spilled the beans.", "spilled the beans"),  # 11
    ("trans-000002", "She told the secret.", "told the secret"),  # 13: span lost if cut
    ("formal-000004", "He kicked the bucket last winter.", "kicked the bucket"),  # 16
    ("trans-000004", "He died last winter.", "died"),  # 12: truncation keeps both spans
    ("formal-000005", "They hit the nail.", "hit the nail"),  # 11, no paraphrase
]


@pytest.fixture(scope="module")
def pair_corpus():
    return IdiomCorpus([make_example(i, t, idiom) for i, t, idiom in ROWS])


def test_default_paraphrase_id():
    assert default_paraphrase_id("formal-000123") == "trans-000123"
    assert default_paraphrase_id("static-7", prefix="para") == "para-7"


def test_paraphrase_equal_length(model, pair_corpus):
    pairs = make_patching_pairs(model, pair_corpus)
    assert pairs.ids == ("formal-000001|trans-000001",)
    aligned = {a.id: a for a in align(pair_corpus, model)}
    clean, corrupted = aligned["formal-000001"], aligned["trans-000001"]
    assert pairs.clean_tokens[0].tolist() == list(clean.tokens)
    assert pairs.corrupted_tokens[0].tolist() == list(corrupted.tokens)
    assert pairs.clean_spans[0].tolist() == list(clean.span)
    assert pairs.corrupted_spans[0].tolist() == list(corrupted.span)
    assert pairs.lengths.tolist() == [len(clean)]
    assert "differ" in pairs.skipped["formal-000002"]
    assert "no paraphrase" in pairs.skipped["formal-000005"]
    assert not any(i.startswith("trans") for i in pairs.skipped)  # paraphrases are not clean


def test_paraphrase_truncate(model, pair_corpus):
    pairs = make_patching_pairs(model, pair_corpus, length="truncate")
    assert pairs.clean_ids == ("formal-000001", "formal-000004")
    assert "truncation" in pairs.skipped["formal-000002"]
    aligned = {a.id: a for a in align(pair_corpus, model)}
    n = len(aligned["trans-000004"])  # the shorter sentence
    assert pairs.lengths.tolist() == [len(aligned["formal-000001"]), n]
    assert pairs.clean_tokens[1, :n].tolist() == list(aligned["formal-000004"].tokens[:n])
    assert pairs.corrupted_tokens[1, :n].tolist() == list(aligned["trans-000004"].tokens)
    width = pairs.clean_tokens.shape[1]
    assert (pairs.clean_tokens[0, pairs.lengths[0] : width] == pairs.pad_id).all()
    groups = pairs.by_length()
    assert sorted(groups) == sorted(pairs.lengths.tolist())
    for n_tokens, group in groups.items():
        assert isinstance(group, PatchingPairs)
        assert group.clean_tokens.shape[1] == n_tokens == group.corrupted_tokens.shape[1]


def test_other_idiom(model, pair_corpus):
    formal = pair_corpus.filter(lambda e: e.id.startswith("formal"))
    pairs = make_patching_pairs(model, formal, mode="other_idiom", seed=3)
    idiom = {e.id: e.idiom for e in formal}
    aligned = {a.id: a for a in align(formal, model)}
    for i, (a, b) in enumerate(zip(pairs.clean_ids, pairs.corrupted_ids, strict=True)):
        assert idiom[a] != idiom[b]
        assert len(aligned[a]) == len(aligned[b]) == int(pairs.lengths[i])
        assert pairs.corrupted_tokens[i].tolist() == list(aligned[b].tokens)
    assert set(pairs.clean_ids) == {"formal-000002", "formal-000005"}  # the 11-token pair
    again = make_patching_pairs(model, formal, mode="other_idiom", seed=3)
    assert again.ids == pairs.ids and torch.equal(again.corrupted_tokens, pairs.corrupted_tokens)


def test_no_pair_is_a_clear_error(model, pair_corpus):
    only_long = pair_corpus.select(["formal-000002", "trans-000002"])
    with pytest.raises(ValueError, match="no paraphrase pair.*token lengths differ"):
        make_patching_pairs(model, only_long)
    with pytest.raises(ValueError, match="mode must be one of"):
        make_patching_pairs(model, pair_corpus, mode="shuffle")


def test_pairs_feed_patching(model, pair_corpus):
    pairs = make_patching_pairs(model, pair_corpus, length="truncate")
    group = pairs.by_length()[int(pairs.lengths[1])]
    result = patch_heads(
        model,
        group.clean_tokens,
        group.corrupted_tokens,
        lambda logits: logits[:, -1].log_softmax(-1)[:, 5].mean(),
        ids=group.ids,
    )
    assert result.ids == ("formal-000004|trans-000004",)
    assert result.effects.shape == (model.cfg.n_layers, model.cfg.n_heads)
