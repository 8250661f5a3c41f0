"""Tiny seeded Hugging Face checkpoints of every supported family, saved offline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    Qwen2Config,
    Qwen3Config,
)

from idiomlens.models import tiny_tokenizer

VOCAB = 300  # tiny_tokenizer()'s vocabulary
_IDS = {"vocab_size": VOCAB, "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}
_SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4}

#: family -> HF config factory (2 layers, hidden 32, vocab 300).
FAMILIES: dict[str, Callable[[], object]] = {
    "gpt2": lambda: GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=64, **_IDS),
    "neox": lambda: GPTNeoXConfig(
        **_SMALL, intermediate_size=64, max_position_embeddings=64, rotary_pct=0.5, **_IDS
    ),
    "neox-sequential": lambda: GPTNeoXConfig(
        **_SMALL,
        intermediate_size=64,
        max_position_embeddings=64,
        use_parallel_residual=False,
        **_IDS,
    ),
    "llama-gqa": lambda: LlamaConfig(
        **_SMALL, num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64, **_IDS
    ),
    "qwen2": lambda: Qwen2Config(
        **_SMALL, num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64, **_IDS
    ),
    "mistral": lambda: MistralConfig(
        **_SMALL, num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64, **_IDS
    ),
    "qwen3": lambda: Qwen3Config(
        **_SMALL,
        num_key_value_heads=2,
        head_dim=8,
        intermediate_size=64,
        max_position_embeddings=64,
        **_IDS,
    ),
}


def randomize_(model: torch.nn.Module, seed: int, scale: float = 0.2) -> torch.nn.Module:
    """Give every parameter random values (norm weights around 1), from a local generator.

    Random-init HF models have unit norm weights and zero biases; randomizing them makes
    LayerNorm folding, bias folding and centring do real work.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            is_norm_weight = param.ndim == 1 and name.endswith("weight")
            noise = torch.randn(param.shape, generator=gen) * scale
            param.copy_(noise + (1.0 if is_norm_weight else 0.0))
    return model


def build_hf(family: str, seed: int = 0) -> torch.nn.Module:
    """A randomized HF causal LM of ``family``."""
    model = AutoModelForCausalLM.from_config(FAMILIES[family]())
    return randomize_(model, seed).eval()


def save_checkpoint(model: torch.nn.Module, path: Path, *, tokenizer: bool = True) -> Path:
    """``save_pretrained`` (safetensors) with the tiny tokenizer beside it."""
    model.save_pretrained(path)
    if tokenizer:
        tiny_tokenizer().save_pretrained(path)
    return path


def hf_log_probs(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(tokens).logits.log_softmax(-1)


def hooked_log_probs(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(tokens).log_softmax(-1)


@pytest.fixture(scope="session")
def tokens() -> torch.Tensor:
    """Two sequences that start with BOS, as the library feeds them."""
    gen = torch.Generator().manual_seed(1)
    body = torch.randint(1, VOCAB, (2, 11), generator=gen)
    return torch.cat([torch.zeros(2, 1, dtype=torch.long), body], dim=1)


@pytest.fixture(scope="session")
def hf_checkpoint(tmp_path_factory) -> Callable[[str], tuple[torch.nn.Module, Path]]:
    """``family -> (hf_model, checkpoint_dir)``, built once per session."""
    cache: dict[str, tuple[torch.nn.Module, Path]] = {}

    def get(family: str) -> tuple[torch.nn.Module, Path]:
        if family not in cache:
            model = build_hf(family)
            folder = tmp_path_factory.mktemp(f"hf-{family}")
            cache[family] = (model, save_checkpoint(model, folder))
        return cache[family]

    return get
