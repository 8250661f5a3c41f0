"""Train the small HookedTransformer that idiomlens ships as its demo model.

Reproducible by construction: the tokenizer is a byte-level BPE trained on the
generated text (:func:`idiomlens.training.demo_data.training_sentences`), every random
draw (initial weights, batch order) comes from one local ``torch.Generator`` seeded by
the config, the number of CPU threads is fixed, and deterministic algorithms are on
for the duration of training (both restored afterwards). On the same CPU, torch build
and config the weights come out bit for bit the same.

Run (writes the folder :func:`idiomlens.models.save_hooked` writes, plus
``training.json`` with the config and the final metrics)::

    python -m idiomlens.training.small --config idiomlens/training/demo_config.json \\
        --out idiomlens/assets/demo_model
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from jaxtyping import Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformers import PreTrainedTokenizerFast

from ..data.example import IdiomCorpus
from ..models.build import build_model
from ..models.native import save_hooked
from ..models.tokenizers import train_bpe_tokenizer
from .demo_data import build_demo_corpus, training_sentences

__all__ = ["TrainConfig", "train_tokenizer", "train", "evaluate", "last_word_accuracy", "main"]

log = logging.getLogger(__name__)
BOS = "<|endoftext|>"


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Model shape and optimisation settings of the demo model (see ``demo_config.json``)."""

    n_layers: int = 2
    n_heads: int = 4
    d_model: int = 64
    d_head: int = 16
    d_mlp: int = 256
    n_ctx: int = 64
    vocab_size: int = 1024
    n_sentences: int = 20000
    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.01
    init_std: float = 0.02
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("n_layers", "n_heads", "d_model", "d_head", "n_ctx", "steps", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TrainConfig.{name} must be positive, got {getattr(self, name)}")
        if self.vocab_size < 257:
            raise ValueError(f"vocab_size must exceed the 256 byte tokens, got {self.vocab_size}")
        if not 0 <= self.warmup < self.steps:
            raise ValueError(f"warmup must be in [0, steps), got {self.warmup}")

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        """Read a config file (unknown keys are an error naming the file)."""
        raw = json.loads(Path(path).read_text())
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"{path}: unknown TrainConfig keys {unknown}")
        return cls(**raw)


def train_tokenizer(sentences: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE on ``sentences``; ``<|endoftext|>`` (id 0) is BOS/EOS/PAD."""
    return train_bpe_tokenizer(sentences, vocab_size)


def _encode(
    tokenizer: PreTrainedTokenizerFast, sentences: list[str], n_ctx: int
) -> Int[Tensor, "n pos"]:
    """BOS + tokens of each sentence, right-padded with 0 (BOS/PAD) to the longest."""
    ids = [[0, *tokenizer(s, add_special_tokens=False)["input_ids"]] for s in sentences]
    longest = max(map(len, ids))
    if longest > n_ctx:
        raise ValueError(f"a training sentence has {longest} tokens > n_ctx={n_ctx}")
    out = torch.zeros(len(ids), longest, dtype=torch.long)
    for i, row in enumerate(ids):
        out[i, : len(row)] = torch.tensor(row)
    return out


def _build_model(cfg: TrainConfig, tokenizer: PreTrainedTokenizerFast) -> HookedTransformer:
    hooked_cfg = {
        "n_layers": cfg.n_layers,
        "d_model": cfg.d_model,
        "n_heads": cfg.n_heads,
        "d_head": cfg.d_head,
        "d_mlp": cfg.d_mlp,
        "d_vocab": len(tokenizer),
        "n_ctx": cfg.n_ctx,
        "act_fn": "gelu",
        "normalization_type": "LN",
        "positional_embedding_type": "standard",
        "default_prepend_bos": True,
        "model_name": "idiomlens-demo",
    }
    return build_model(hooked_cfg, seed=cfg.seed, tokenizer=tokenizer, init_std=cfg.init_std)


@contextlib.contextmanager
def _reproducible(threads: int) -> Iterator[None]:
    """Fix the thread count and turn on deterministic algorithms; restore both after."""
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        torch.set_num_threads(old_threads)


def _lr(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * frac))


def _lm_loss(model: HookedTransformer, tokens: Int[Tensor, "batch pos"]) -> Tensor:
    """Mean next-token loss over real targets (padding, id 0 after the first, is masked)."""
    logits = model(tokens)[:, :-1]
    targets = tokens[:, 1:]
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=0)


def train(cfg: TrainConfig) -> tuple[HookedTransformer, dict[str, float]]:
    """Train the demo model from scratch; returns the model (eval mode) and its metrics."""
    sentences = training_sentences(cfg.n_sentences, seed=cfg.seed)
    tokenizer = train_tokenizer(sentences, cfg.vocab_size)
    data = _encode(tokenizer, sentences, cfg.n_ctx)
    with _reproducible(cfg.threads):
        model = _build_model(cfg, tokenizer)
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        model.train()
        order, cursor, t0 = torch.randperm(len(data), generator=gen), 0, time.time()
        for step in range(cfg.steps):
            if cursor + cfg.batch_size > len(order):
                order, cursor = torch.randperm(len(data), generator=gen), 0
            batch = data[order[cursor : cursor + cfg.batch_size]]
            cursor += cfg.batch_size
            batch = batch[:, : int((batch != 0).sum(1).max()) + 1]  # trim shared padding
            for group in opt.param_groups:
                group["lr"] = _lr(cfg, step)
            loss = _lm_loss(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if step % 100 == 0 or step == cfg.steps - 1:
                log.info("step %d loss %.4f (%.0f s)", step, loss.item(), time.time() - t0)
        model.eval()
        with torch.no_grad():
            metrics = {"final_train_loss": float(_lm_loss(model, data[:2048]))}
    metrics["train_seconds"] = round(time.time() - t0, 1)
    return model, metrics


def evaluate(model: HookedTransformer) -> dict[str, float]:
    """Last-word greedy accuracy on each split of the demo corpus (``nwp_<split>``)."""
    corpus = build_demo_corpus()
    metrics = {}
    with torch.no_grad():
        for split in ("figurative", "literal", "paraphrase"):
            sub = corpus.filter(lambda ex, s=split: ex.meta["split"] == s)
            metrics[f"nwp_{split}"] = last_word_accuracy(model, sub)
    return metrics


def last_word_accuracy(model: HookedTransformer, corpus: IdiomCorpus) -> float:
    """Fraction of examples whose last span word (with its space) greedy decoding produces.

    Teacher forcing is exact for greedy decoding: the continuation equals the word iff
    the argmax at each of its token positions is the word's next token.
    """
    hits = []
    for ex in corpus:
        cut = max(ex.text.rfind(" ", 0, ex.span[1]), 0)  # the last word keeps its space
        prompt = [0, *model.tokenizer(ex.text[:cut], add_special_tokens=False)["input_ids"]]
        word = model.tokenizer(ex.text[cut : ex.span[1]], add_special_tokens=False)["input_ids"]
        logits = model(torch.tensor([prompt + word[:-1]]))[0, len(prompt) - 1 :]
        hits.append(bool((logits.argmax(-1) == torch.tensor(word)).all()))
    return sum(hits) / max(1, len(hits))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the idiomlens demo model.")
    parser.add_argument("--config", required=True, help="TrainConfig JSON file")
    parser.add_argument("--out", required=True, help="output folder (save_hooked layout)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = TrainConfig.from_json(args.config)
    model, metrics = train(cfg)
    metrics.update(evaluate(model))
    out = save_hooked(model, args.out)
    (out / "training.json").write_text(
        json.dumps({"config": asdict(cfg), "metrics": metrics}, indent=2, sort_keys=True)
    )
    log.info("saved %s: %s", out, metrics)


if __name__ == "__main__":
    main()
