"""TrainedLM.embeddings: per-layer internal embeddings through extract, equal to the
model's own cached activations."""

from __future__ import annotations

import pytest
import torch

from idiomlens.data import TextCorpus, TextExample
from idiomlens.training.lab import train_lm

from .conftest import tiny_config


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory):
    return train_lm(tiny_config(), out=tmp_path_factory.mktemp("lab-emb") / "run")


def test_token_embeddings_equal_the_cached_residual_stream(lab_run):
    texts = ["1 2 3 | 1 2 3", "4 0 |"]
    reps = lab_run.embeddings(texts)
    model = lab_run.model
    assert reps.ids == ("text-0", "text-1") and reps.pool == "tokens"
    assert reps.layers == tuple(range(model.cfg.n_layers))
    for e, text in enumerate(texts):
        ids = lab_run.tokenizer(text, add_special_tokens=False)["input_ids"]
        tokens = torch.tensor([[model.tokenizer.bos_token_id, *ids]])
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("resid_post"))
        rows = reps.example_index == e
        assert reps.token_ids[rows].tolist() == ids
        for layer in reps.layers:
            expected = cache[f"blocks.{layer}.hook_resid_post"][0, 1:]
            torch.testing.assert_close(reps.vectors(layer)[rows], expected, atol=1e-5, rtol=1e-5)


def test_pooled_embeddings_keep_text_labels(lab_run, tmp_path):
    corpus = TextCorpus(
        [TextExample("a", "1 2 |", {"kind": "x"}), TextExample("b", "3 |", {"kind": "y"})]
    )
    reps = lab_run.embeddings(corpus, pool="last", site="resid_pre", out=tmp_path / "reps")
    assert reps.ids == ("a", "b") and reps.labels["kind"] == ("x", "y")
    assert tuple(reps.vectors(0).shape) == (2, lab_run.model.cfg.d_model)
    again = lab_run.embeddings(corpus, pool="last", site="resid_pre", out=tmp_path / "reps")
    assert torch.equal(again.vectors(0), reps.vectors(0))
