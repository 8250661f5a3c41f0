"""PEFT adapter directories: merged into their local base, equal to the HF+PEFT model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from peft import IA3Config, LoraConfig, PromptTuningConfig, get_peft_model
from transformers import AutoModelForCausalLM

from idiomlens.models import DEFAULT_PROCESSING, load_model, model_info
from idiomlens.models.peft_merge import resolve_base

from .conftest import hf_log_probs, hooked_log_probs

ATOL = 1e-4

ADAPTERS = {
    # GPT-2's Conv1D stores weights transposed: LoRA needs fan_in_fan_out there.
    "lora": lambda family: LoraConfig(r=4, lora_alpha=8, fan_in_fan_out=family == "gpt2"),
    "ia3": lambda family: IA3Config(fan_in_fan_out=family == "gpt2"),
}


def make_adapter(base_dir: Path, out: Path, kind: str, family: str, seed: int = 0):
    """Apply a PEFT adapter with random (non-identity) weights to the saved base; save it.

    Returns the unmerged PEFT model, the reference the loaded model must match.
    """
    base = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True)
    peft_model = get_peft_model(base, ADAPTERS[kind](family)).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name or "ia3_" in name:
                centre = 1.0 if "ia3_" in name else 0.0  # IA3 scales start at 1
                param.copy_(centre + 0.3 * torch.randn(param.shape, generator=gen))
    peft_model.save_pretrained(out)
    return peft_model


@pytest.fixture(scope="module")
def lora_dir(hf_checkpoint, tmp_path_factory):
    _, base_dir = hf_checkpoint("llama-gqa")
    out = tmp_path_factory.mktemp("lora") / "adapter"
    return make_adapter(base_dir, out, "lora", "llama-gqa"), out


@pytest.mark.parametrize(("kind", "family"), [("lora", "gpt2"), ("lora", "neox"), ("ia3", "qwen2")])
def test_adapter_matches_hf_plus_peft(hf_checkpoint, tokens, tmp_path, kind, family):
    hf_base, base_dir = hf_checkpoint(family)
    reference = make_adapter(base_dir, tmp_path / "adapter", kind, family, seed=1)
    model = load_model(tmp_path / "adapter")
    expected = hf_log_probs(reference, tokens)
    assert torch.allclose(hooked_log_probs(model, tokens), expected, atol=ATOL)
    # the adapter really changes the model (so the match above is not the base's)
    assert (expected - hf_log_probs(hf_base, tokens)).abs().max() > 1e-2
    info = model_info(model)
    assert info.kind == "peft_adapter"
    assert info.adapter_type == kind.upper()
    assert info.base == str(base_dir.resolve())
    assert info.processing == DEFAULT_PROCESSING
    assert model.tokenizer is not None  # the base's tokenizer


def _copy_with_base(adapter_dir: Path, dest: Path, declared: str) -> Path:
    shutil.copytree(adapter_dir, dest)
    cfg_path = dest / "adapter_config.json"
    raw = json.loads(cfg_path.read_text())
    raw["base_model_name_or_path"] = declared
    cfg_path.write_text(json.dumps(raw))
    return dest


def test_missing_base_names_adapter_and_base(lora_dir, tmp_path):
    moved = _copy_with_base(lora_dir[1], tmp_path / "orphan", "someone/not-downloaded")
    with pytest.raises(FileNotFoundError, match=r"orphan.*someone/not-downloaded.*base="):
        load_model(moved)


def test_explicit_base_overrides_the_config(hf_checkpoint, lora_dir, tmp_path, tokens):
    _, base_dir = hf_checkpoint("llama-gqa")
    moved = _copy_with_base(lora_dir[1], tmp_path / "moved", "someone/not-downloaded")
    model = load_model(moved, base=base_dir)
    assert model_info(model).base == str(base_dir.resolve())
    expected = hf_log_probs(lora_dir[0], tokens)
    assert torch.allclose(hooked_log_probs(model, tokens), expected, atol=ATOL)


def test_relative_base_is_resolved_from_the_adapter_dir(hf_checkpoint, lora_dir, tmp_path):
    _, base_dir = hf_checkpoint("llama-gqa")
    local_base = tmp_path / "base"
    shutil.copytree(base_dir, local_base)
    adapter = _copy_with_base(lora_dir[1], tmp_path / "adapter", "../base")
    assert resolve_base(adapter) == local_base.resolve()


def test_base_keyword_only_for_adapters(hf_checkpoint):
    _, base_dir = hf_checkpoint("llama-gqa")
    with pytest.raises(ValueError, match="only for adapter"):
        load_model(base_dir, base=base_dir)


def test_prompt_learning_adapter_is_refused(hf_checkpoint, tmp_path):
    _, base_dir = hf_checkpoint("llama-gqa")
    base = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True)
    cfg = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=2)
    get_peft_model(base, cfg).save_pretrained(tmp_path / "prompt")
    with pytest.raises(ValueError, match="PROMPT_TUNING.*cannot be merged"):
        load_model(tmp_path / "prompt")
