"""``tiny_hf_checkpoint``: a saved random HF checkpoint that load_model and HF agree on."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from idiomlens.models import load_model, tiny_hf_checkpoint, tiny_tokenizer
from idiomlens.models.tiny import TINY_HF_FAMILIES

from .conftest import hf_log_probs, hooked_log_probs


@pytest.mark.parametrize("family", TINY_HF_FAMILIES)
def test_loads_and_matches_hf(family, tmp_path, tokens):
    folder = tiny_hf_checkpoint(tmp_path / family, family=family, n_layers=1)
    hf = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    assert hf.config.model_type == family
    assert len(tiny_tokenizer()) == hf.config.vocab_size
    hooked = load_model(folder)
    assert hooked.tokenizer is not None
    torch.testing.assert_close(
        hooked_log_probs(hooked, tokens), hf_log_probs(hf, tokens), atol=1e-4, rtol=1e-4
    )


def test_seeded_and_leaves_global_rng_alone(tmp_path):
    before = torch.random.get_rng_state()
    a = load_file(tiny_hf_checkpoint(tmp_path / "a", seed=3) / "model.safetensors")
    b = load_file(tiny_hf_checkpoint(tmp_path / "b", seed=3) / "model.safetensors")
    c = load_file(tiny_hf_checkpoint(tmp_path / "c", seed=4) / "model.safetensors")
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_unknown_family(tmp_path):
    assert "gpt2" in TINY_HF_FAMILIES
    with pytest.raises(ValueError, match="unknown family 'bert'"):
        tiny_hf_checkpoint(tmp_path, family="bert")
