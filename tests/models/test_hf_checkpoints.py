"""Local Hugging Face checkpoints load offline and compute what the HF model computes."""

from __future__ import annotations

import json
import tempfile

import pytest
import torch
from safetensors.torch import load_file

from idiomlens.models import (
    DEFAULT_PROCESSING,
    NO_PROCESSING,
    SUPPORTED_ARCHITECTURES,
    load_model,
    model_info,
    save_hooked,
    tiny_tokenizer,
)
from idiomlens.models.hf import MAX_DEFAULT_CTX

from .conftest import FAMILIES, build_hf, hf_log_probs, hooked_log_probs, save_checkpoint

ATOL = 1e-4


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_log_probs_match_hf(hf_checkpoint, tokens, family):
    hf, folder = hf_checkpoint(family)
    model = load_model(folder)
    assert torch.allclose(hooked_log_probs(model, tokens), hf_log_probs(hf, tokens), atol=ATOL)
    # processing as from_pretrained: norms folded, flags recorded
    assert model.cfg.normalization_type in ("LNPre", "RMSPre")
    info = model_info(model)
    assert info.kind == "hf_checkpoint"
    assert info.architecture == hf.config.architectures[0]
    assert info.architecture in SUPPORTED_ARCHITECTURES
    assert info.processing == DEFAULT_PROCESSING
    assert info.weights_format == "safetensors"
    assert info.source == str(folder.resolve())
    assert model.cfg.n_layers == 2 and model.cfg.d_vocab == 300


def test_unprocessed_weights_also_match_and_differ_from_processed(hf_checkpoint, tokens):
    hf, folder = hf_checkpoint("gpt2")
    raw = load_model(folder, processing=NO_PROCESSING)
    assert raw.cfg.normalization_type == "LN"
    assert model_info(raw).processing == NO_PROCESSING
    assert torch.allclose(hooked_log_probs(raw, tokens), hf_log_probs(hf, tokens), atol=ATOL)
    # The raw W_U is HF's lm_head; the processed one is centred and LN-folded.
    assert torch.allclose(raw.W_U, hf.lm_head.weight.T)
    processed = load_model(folder)
    assert not torch.allclose(processed.W_U, raw.W_U, atol=1e-3)
    assert torch.allclose(processed.W_U.mean(-1), torch.zeros(()), atol=1e-5)


def test_tokenizer_comes_from_the_checkpoint(hf_checkpoint):
    _, folder = hf_checkpoint("llama-gqa")
    model = load_model(folder)
    text = "He spilled the beans."
    expected = tiny_tokenizer()(text, add_special_tokens=False)["input_ids"]
    assert model.tokenizer(text, add_special_tokens=False)["input_ids"] == expected
    assert model.to_tokens(text)[0, 0].item() == model.tokenizer.bos_token_id


def test_checkpoint_without_tokenizer_takes_token_ids(tmp_path, tokens):
    hf = build_hf("qwen2", seed=5)
    model = load_model(save_checkpoint(hf, tmp_path / "ckpt", tokenizer=False))
    assert model.tokenizer is None
    assert torch.allclose(hooked_log_probs(model, tokens), hf_log_probs(hf, tokens), atol=ATOL)


def test_pytorch_bin_checkpoint_loads_with_weights_only(tmp_path, tokens):
    hf = build_hf("neox", seed=3)
    folder = save_checkpoint(hf, tmp_path / "bin")
    (folder / "model.safetensors").unlink()
    torch.save(hf.state_dict(), folder / "pytorch_model.bin")
    model = load_model(folder)
    assert model_info(model).weights_format == "pytorch_bin"
    assert torch.allclose(hooked_log_probs(model, tokens), hf_log_probs(hf, tokens), atol=ATOL)


def test_name_substrings_in_path_do_not_fool_the_config(tmp_path, tokens, monkeypatch):
    # TransformerLens picks hard-coded configs for names containing "llama"/"gemma",
    # in the checkpoint path or in the temporary folder.
    (tmp_path / "llama-tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "llama-tmp"))
    hf = build_hf("gpt2", seed=7)
    folder = save_checkpoint(hf, tmp_path / "meta-llama" / "Llama-3.2-1B-gemma-2-ft")
    model = load_model(folder)
    assert model.cfg.original_architecture == "GPT2LMHeadModel"
    assert model.cfg.model_name == "Llama-3.2-1B-gemma-2-ft"
    assert torch.allclose(hooked_log_probs(model, tokens), hf_log_probs(hf, tokens), atol=ATOL)


def test_long_context_is_capped_unless_asked(tmp_path, tokens):
    hf = build_hf("llama-gqa", seed=2)
    hf.config.max_position_embeddings = 4 * MAX_DEFAULT_CTX
    folder = save_checkpoint(hf, tmp_path / "long")
    assert json.loads((folder / "config.json").read_text())["max_position_embeddings"] == 8192
    assert load_model(folder).cfg.n_ctx == MAX_DEFAULT_CTX
    short = load_model(folder, n_ctx=32)
    assert short.cfg.n_ctx == 32
    assert torch.allclose(hooked_log_probs(short, tokens), hf_log_probs(hf, tokens), atol=ATOL)


def test_reduced_precision(hf_checkpoint, tokens):
    hf, folder = hf_checkpoint("qwen2")
    model = load_model(folder, dtype="bf16", device="cpu")
    assert model.cfg.dtype == torch.bfloat16
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    out = hooked_log_probs(model, tokens).float()
    assert (out - hf_log_probs(hf, tokens)).abs().max() < 0.25  # bf16 rounding only


def test_loading_leaves_the_checkpoint_untouched(hf_checkpoint):
    _, folder = hf_checkpoint("gpt2")
    before = {k: v.clone() for k, v in load_file(folder / "model.safetensors").items()}
    load_model(folder)
    after = load_file(folder / "model.safetensors")
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_converted_checkpoint_survives_save_hooked(hf_checkpoint, tokens, tmp_path):
    _, folder = hf_checkpoint("neox")
    model = load_model(folder)
    back = load_model(save_hooked(model, tmp_path / "saved"))
    assert model_info(back).kind == "hooked_dir"
    assert back.cfg.normalization_type == "LNPre"  # not folded twice
    assert torch.equal(hooked_log_probs(back, tokens), hooked_log_probs(model, tokens))
    assert back.tokenizer is not None and back.cfg.tokenizer_name is None
