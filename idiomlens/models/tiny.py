"""Tiny seeded models and a byte-level BPE tokenizer for tests, doctests and examples.

Everything here is built offline in milliseconds: the tokenizer is trained with
``tokenizers`` on a few sentences the package ships, the model is a randomly
initialised ``HookedTransformer`` seeded locally (no global RNG is touched), and
:func:`tiny_hf_checkpoint` saves a random Hugging Face checkpoint folder (for
fine-tuning and loading examples).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformers import PreTrainedTokenizerFast

from .tokenizers import train_bpe_tokenizer

__all__ = ["tiny_model", "tiny_tokenizer", "tiny_hf_checkpoint", "TINY_TEXT", "TINY_HF_FAMILIES"]

#: The text the tiny tokenizer is trained on (idiomatic and literal sentences).
TINY_TEXT = """\
He finally spilled the beans about the surprise party.
She spilled the beans all over the kitchen floor.
They kicked the bucket list off with a trip to Rome.
The old farmer kicked the bucket last winter.
It's raining cats and dogs, so don't forget your umbrella!
We'll cross that bridge when we come to it.
"Break a leg," she said, and he walked on stage.
The exam was a piece of cake; I didn't even study.
He let the cat out of the bag before dinner.
Don't beat around the bush: tell me what happened.
Once in a blue moon, the river floods the valley.
You hit the nail on the head with that answer.
The quick brown fox jumps over the lazy dog.
"""


@lru_cache(maxsize=4)
def tiny_tokenizer(vocab_size: int = 300) -> PreTrainedTokenizerFast:
    """:func:`train_bpe_tokenizer` on :data:`TINY_TEXT` (cached per vocabulary size).

    >>> tok = tiny_tokenizer()
    >>> tok.bos_token_id
    0
    >>> tok.decode(tok("spilled the beans")["input_ids"])
    'spilled the beans'
    """
    return train_bpe_tokenizer(TINY_TEXT.splitlines(), vocab_size)


def tiny_model(
    *,
    n_layers: int = 2,
    n_heads: int = 4,
    d_model: int = 32,
    d_head: int = 8,
    d_mlp: int | None = 64,
    n_ctx: int = 64,
    d_vocab: int | None = None,
    positional_embedding_type: str = "standard",
    normalization_type: str | None = "LN",
    act_fn: str = "gelu",
    attn_only: bool = False,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    with_tokenizer: bool = True,
) -> HookedTransformer:
    """Build a small random ``HookedTransformer`` in milliseconds, seeded locally.

    With ``with_tokenizer`` (default) the model carries :func:`tiny_tokenizer` and its
    vocabulary size; otherwise ``d_vocab`` (default 100) is used and the model has no
    tokenizer. ``positional_embedding_type`` may be ``"standard"`` or ``"rotary"``.

    >>> model = tiny_model(n_layers=1)
    >>> model.cfg.n_layers, model.cfg.n_heads
    (1, 4)
    >>> model(torch.tensor([[0, 5, 6]])).shape[:2]
    torch.Size([1, 3])
    """
    tokenizer = tiny_tokenizer() if with_tokenizer else None
    vocab = d_vocab or (len(tokenizer) if tokenizer is not None else 100)
    cfg = HookedTransformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_head=d_head,
        d_mlp=None if attn_only else d_mlp,
        d_vocab=vocab,
        n_ctx=n_ctx,
        act_fn=None if attn_only else act_fn,
        attn_only=attn_only,
        normalization_type=normalization_type,
        positional_embedding_type=positional_embedding_type,
        rotary_dim=d_head if positional_embedding_type == "rotary" else None,
        default_prepend_bos=True,
        seed=None,
        dtype=dtype,
        device=str(device),
        model_name=f"tiny-{n_layers}l{n_heads}h-seed{seed}",
    )
    gen = torch.Generator().manual_seed(seed)
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("W_Q", "W_K", "W_V", "W_O", "W_in", "W_out", "W_E", "W_pos", "W_U")):
                std = 0.5 if name.endswith(("W_Q", "W_K")) else 0.1
                param.copy_(torch.randn(param.shape, generator=gen) * std)
            elif name.endswith(("b_Q", "b_K", "b_V", "b_O", "b_in", "b_out", "b_U")):
                param.copy_(torch.randn(param.shape, generator=gen) * 0.02)
    if torch.device(device) != torch.device("cpu"):
        model.to(torch.device(device))
    if dtype != torch.float32:
        model.to(dtype)
    return model.eval()


#: ``config.model_type`` families :func:`tiny_hf_checkpoint` can build.
TINY_HF_FAMILIES = ("gpt2", "gpt_neox", "llama")


def _hf_config(family: str, *, n_layers: int, n_heads: int, d_model: int, n_ctx: int) -> object:
    from transformers import GPT2Config, GPTNeoXConfig, LlamaConfig

    ids = {
        "vocab_size": len(tiny_tokenizer()),
        "bos_token_id": 0,
        "eos_token_id": 0,
        "pad_token_id": 0,
    }
    sizes = {"hidden_size": d_model, "num_hidden_layers": n_layers, "num_attention_heads": n_heads}
    if family == "gpt2":
        return GPT2Config(
            n_embd=d_model, n_layer=n_layers, n_head=n_heads, n_positions=n_ctx, **ids
        )
    if family == "gpt_neox":
        return GPTNeoXConfig(
            **sizes, intermediate_size=4 * d_model, max_position_embeddings=n_ctx, **ids
        )
    if family == "llama":
        return LlamaConfig(
            **sizes, intermediate_size=4 * d_model, max_position_embeddings=n_ctx, **ids
        )
    raise ValueError(
        f"tiny_hf_checkpoint: unknown family {family!r}; choose one of {TINY_HF_FAMILIES}"
    )


def tiny_hf_checkpoint(
    folder: str | Path,
    *,
    family: str = "gpt2",
    n_layers: int = 2,
    n_heads: int = 4,
    d_model: int = 32,
    n_ctx: int = 64,
    seed: int = 0,
) -> Path:
    """Save a small randomly initialised Hugging Face causal LM, with :func:`tiny_tokenizer`,
    to ``folder`` (created) and return it; offline, well under a second.

    The folder is an ordinary local checkpoint (``config.json``, safetensors weights,
    tokenizer files): :func:`~idiomlens.load_model` and :func:`~idiomlens.finetune` read
    it. ``family`` is one of :data:`TINY_HF_FAMILIES`; Hugging Face's own initialisation
    draws from a forked torch generator seeded with ``seed``, so the global RNG is left
    as it was and the same arguments give the same weights.

    >>> import tempfile
    >>> from idiomlens.models import load_model
    >>> folder = tiny_hf_checkpoint(tempfile.mkdtemp(), n_layers=1)
    >>> (folder / "config.json").is_file(), load_model(folder).cfg.n_layers
    (True, 1)
    """
    from transformers import AutoModelForCausalLM

    config = _hf_config(family, n_layers=n_layers, n_heads=n_heads, d_model=d_model, n_ctx=n_ctx)
    folder = Path(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder
