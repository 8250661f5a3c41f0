"""Exactly the right parameters train per method, and adapter checkpoints load like HF+peft."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from idiomlens.models import load_model, model_info
from tests.models.conftest import build_hf, hf_log_probs, hooked_log_probs

from .conftest import weights

ATOL = 1e-4


def _optimizer_numel(result) -> int:
    """Parameters the optimizer held state for, read from the last Trainer checkpoint."""
    state = torch.load(result.checkpoints[-1] / "optimizer.pt", weights_only=True)["state"]
    return sum(s["exp_avg"].numel() for s in state.values())


def test_bitfit_changes_only_bias_tensors(run, base_dir):
    result = run("bitfit")
    base, final = weights(base_dir("gpt2")), weights(result.final)
    assert set(final) == set(base)
    biases = [k for k in base if k.endswith("bias")]
    assert biases
    for key in base:
        changed = not torch.equal(base[key], final[key])
        assert changed == key.endswith("bias"), key
    assert result.trainable_params == sum(base[k].numel() for k in biases)
    assert _optimizer_numel(result) == result.trainable_params


def test_full_changes_every_tensor(run, base_dir):
    result = run("full")
    base, final = weights(base_dir("gpt2")), weights(result.final)
    assert set(final) == set(base)
    unchanged = [k for k in base if torch.equal(base[k], final[k])]
    assert unchanged == []
    assert result.trainable_params == result.total_params
    assert _optimizer_numel(result) == result.total_params


@pytest.mark.parametrize(("method", "family"), [("lora", "gpt2"), ("ia3", "llama-gqa")])
def test_adapters_leave_every_base_weight_unchanged(run, base_dir, method, family):
    result = run(method, family)
    # the base on disk still holds exactly the weights it was built with
    original = build_hf(family).state_dict()
    on_disk = weights(base_dir(family))
    assert all(torch.equal(on_disk[k], original[k]) for k in on_disk)
    # checkpoints hold adapter tensors only, and only those were optimised
    marker = "lora_" if method == "lora" else "ia3_"
    for folder in (*result.checkpoints, result.final):
        adapter = weights(folder)
        assert adapter and all(marker in k for k in adapter), folder
        assert not (folder / "model.safetensors").exists()
    n_adapter = sum(t.numel() for t in weights(result.final).values())
    assert result.trainable_params == n_adapter == _optimizer_numel(result)
    assert (
        result.total_params == sum(t.numel() for t in original.values()) - _tied(family) + n_adapter
    )


def _tied(family: str) -> int:
    """Elements of the tied lm_head (counted once as a parameter, twice in state_dict)."""
    model = build_hf(family)
    if model.get_output_embeddings().weight is model.get_input_embeddings().weight:
        return model.get_output_embeddings().weight.numel()
    return 0


@pytest.mark.parametrize(
    ("method", "family"),
    [
        ("lora", "gpt2"),
        ("lora", "neox"),
        ("lora", "llama-gqa"),
        ("lora", "qwen2"),
        ("ia3", "gpt2"),
        ("ia3", "qwen2"),
    ],
)
def test_adapter_checkpoint_log_probs_match_hf_plus_peft(run, base_dir, tokens, method, family):
    result = run(method, family)
    base = AutoModelForCausalLM.from_pretrained(base_dir(family), local_files_only=True).eval()
    base_lp = hf_log_probs(base, tokens)
    for folder in (result.checkpoints[1], result.final):
        hf = AutoModelForCausalLM.from_pretrained(base_dir(family), local_files_only=True)
        reference = PeftModel.from_pretrained(hf, folder).eval()
        expected = hf_log_probs(reference, tokens)
        model = load_model(folder)
        assert model_info(model).kind == "peft_adapter"
        assert model_info(model).base == str(base_dir(family).resolve())
        assert torch.allclose(hooked_log_probs(model, tokens), expected, atol=ATOL)
    assert (expected - base_lp).abs().max() > 1e-3  # training really changed the model


def test_full_and_bitfit_checkpoints_load_as_hf_checkpoints(run, base_dir, tokens):
    for method in ("full", "bitfit"):
        result = run(method)
        reference = AutoModelForCausalLM.from_pretrained(result.final, local_files_only=True).eval()
        model = load_model(result.final)
        assert model_info(model).kind == "hf_checkpoint"
        assert torch.allclose(
            hooked_log_probs(model, tokens), hf_log_probs(reference, tokens), atol=ATOL
        )


def test_default_targets_are_overridable(run):
    result = run("lora", target_modules=("c_attn",))
    keys = weights(result.final)
    assert keys and all(".c_attn." in k for k in keys)
    assert result.config["target_modules"] == ["c_attn"]
