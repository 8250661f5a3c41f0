"""Model loading and building (the only place that constructs a model), tokenizers,
hook sites and tiny test models."""

from .build import build_model, hooked_config
from .hf import SUPPORTED_ARCHITECTURES
from .info import DEFAULT_PROCESSING, NO_PROCESSING, ModelInfo, Processing, model_info
from .load import DEMO_MODEL_NAME, load_model
from .native import load_hooked, save_hooked
from .sites import attn_out_hook, pattern_hook, resid_pre_hook, z_hook
from .tiny import tiny_hf_checkpoint, tiny_model, tiny_tokenizer
from .tokenizers import char_tokenizer, train_bpe_tokenizer, word_tokenizer

__all__ = [
    "load_model",
    "DEMO_MODEL_NAME",
    "model_info",
    "ModelInfo",
    "Processing",
    "DEFAULT_PROCESSING",
    "NO_PROCESSING",
    "SUPPORTED_ARCHITECTURES",
    "save_hooked",
    "load_hooked",
    "tiny_model",
    "tiny_tokenizer",
    "tiny_hf_checkpoint",
    "build_model",
    "hooked_config",
    "train_bpe_tokenizer",
    "char_tokenizer",
    "word_tokenizer",
    "z_hook",
    "pattern_hook",
    "resid_pre_hook",
    "attn_out_hook",
]
