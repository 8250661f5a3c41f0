"""Samples and tokenizer of a lab run: a synthetic task or a file, as padded tensors.

Every split is ``tokens [n, pos]`` (BOS first, right-padded), ``loss_mask`` (targets
the loss averages over) and ``scored`` (targets the accuracy counts; tasks only). Task
samples come from local generators seeded by ``train.seed`` (train) and ``train.seed +
1`` (validation, with samples that also occur in training dropped); file samples are
split by a seeded permutation (``data.val_fraction``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from ...models.tokenizers import char_tokenizer, train_bpe_tokenizer, word_tokenizer
from .config import LabConfig, LabConfigError
from .tasks import get_task

__all__ = ["Split", "LMData", "build_data", "encode_texts", "read_texts"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    """One split: padded ``tokens``, per-target ``loss_mask`` and ``scored`` masks."""

    tokens: Int[Tensor, "n pos"]
    loss_mask: Bool[Tensor, "n pos"]
    scored: Bool[Tensor, "n pos"]

    def __len__(self) -> int:
        return self.tokens.shape[0]


@dataclass(frozen=True)
class LMData:
    """Train and validation splits, the tokenizer, and whether accuracy is defined."""

    train: Split
    val: Split
    tokenizer: Any
    has_accuracy: bool
    pad_id: int


def _unique_rows(train: Tensor, val: Tensor) -> Tensor:
    """Indices of ``val`` rows that do not occur in ``train`` (same width assumed)."""
    width = max(train.shape[1], val.shape[1])
    pad = lambda t: torch.nn.functional.pad(t, (0, width - t.shape[1]))  # noqa: E731
    seen = {tuple(r) for r in pad(train).tolist()}
    return torch.tensor(
        [i for i, r in enumerate(pad(val).tolist()) if tuple(r) not in seen], dtype=torch.long
    )


def _task_data(cfg: LabConfig) -> LMData:
    if cfg.tokenizer.kind not in ("auto", "task"):
        raise LabConfigError(
            f"tokenizer.kind: a task uses its own symbols, not {cfg.tokenizer.kind!r}"
        )
    task = get_task(cfg.data.task)
    seed = cfg.train.seed
    tr = task(torch.Generator().manual_seed(seed), cfg.data.n_train, "train", **cfg.data.params)
    va = task(torch.Generator().manual_seed(seed + 1), cfg.data.n_val, "val", **cfg.data.params)
    if tr.vocab != va.vocab:
        raise ValueError(f"task {cfg.data.task!r}: train and val vocabularies differ")
    keep = _unique_rows(tr.tokens, va.tokens)
    if len(keep) == 0:
        raise LabConfigError(
            f"data.n_val: every validation sample of task {cfg.data.task!r} also occurs in training"
        )
    if len(keep) < len(va.tokens):
        log.info(
            "task %s: dropped %d validation samples seen in training",
            cfg.data.task,
            len(va.tokens) - len(keep),
        )

    def full(s: Any) -> Tensor:  # every real target
        real = s.real if s.real is not None else torch.ones_like(s.scored)
        return real & (torch.arange(s.tokens.shape[1]) > 0)

    loss = (lambda s: s.scored) if cfg.train.loss == "scored" else full
    train = Split(tr.tokens, loss(tr), tr.scored)
    val = Split(va.tokens[keep], loss(va)[keep], va.scored[keep])
    return LMData(train, val, word_tokenizer(tr.vocab), True, 0)


def read_texts(cfg: LabConfig) -> list[str]:
    """The samples of ``data.path``: lines of a text file, texts of an IdiomCorpus
    ``.jsonl``, or ``data.text_field`` of a saved ``datasets.Dataset`` folder."""
    path = Path(cfg.data.path)
    fmt = cfg.data.format
    if fmt == "auto":
        fmt = "dataset" if path.is_dir() else "corpus" if path.suffix == ".jsonl" else "text"
    if not path.exists():
        raise LabConfigError(f"data.path: no such file or folder {path}")
    if fmt == "dataset":
        import datasets

        ds = datasets.load_from_disk(str(path))
        if cfg.data.text_field not in ds.column_names:
            raise LabConfigError(
                f"data.text_field: {path} has no column {cfg.data.text_field!r} ({ds.column_names})"
            )
        texts = list(ds[cfg.data.text_field])
    elif fmt == "corpus":
        from ...data.example import IdiomCorpus

        texts = [ex.text for ex in IdiomCorpus.from_jsonl(path)]
    else:
        texts = [line for line in path.read_text().splitlines() if line.strip()]
    if len(texts) < 2:
        raise LabConfigError(f"data.path: {path} has {len(texts)} samples; need at least 2")
    return texts


def _text_tokenizer(cfg: LabConfig, texts: list[str]) -> Any:
    kind = cfg.tokenizer.kind
    if kind == "task":
        raise LabConfigError("tokenizer.kind: 'task' needs data.task")
    if kind in ("auto", "char"):
        return char_tokenizer(texts)
    if kind == "bpe":
        return train_bpe_tokenizer(texts, cfg.tokenizer.vocab_size)
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(cfg.tokenizer.path, local_files_only=True)
    except OSError as err:
        raise LabConfigError(
            f"tokenizer.path: cannot load a tokenizer from {cfg.tokenizer.path}: {err}"
        ) from None


def special_ids(tokenizer: Any) -> tuple[int, int]:
    """``(bos, pad)`` ids of ``tokenizer`` (BOS falls back to EOS, PAD to BOS)."""
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if bos is None:
        raise ValueError("the tokenizer has neither a BOS nor an EOS token to start samples with")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else bos
    return int(bos), int(pad)


def encode_texts(
    tokenizer: Any,
    texts: list[str],
    *,
    max_len: int | None = None,
    truncate: bool = False,
    where: str = "text",
) -> tuple[Int[Tensor, "n pos"], Bool[Tensor, "n pos"]]:
    """BOS + tokens of each text, right-padded; and the mask of real targets (pos >= 1).

    A text longer than ``max_len`` is an error naming ``where:line`` unless ``truncate``.
    """
    bos, pad = special_ids(tokenizer)
    rows = [[bos, *tokenizer(t, add_special_tokens=False)["input_ids"]] for t in texts]
    for i, row in enumerate(rows):
        if max_len is not None and len(row) > max_len:
            if not truncate:
                raise LabConfigError(
                    f"{where}:{i + 1}: {len(row)} tokens > n_ctx={max_len} (set data.truncate)"
                )
            rows[i] = row[:max_len]
    width = max(map(len, rows))
    tokens = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row)
        mask[i, 1 : len(row)] = True
    return tokens, mask


def _text_data(cfg: LabConfig) -> LMData:
    texts = read_texts(cfg)
    order = torch.randperm(
        len(texts), generator=torch.Generator().manual_seed(cfg.train.seed)
    ).tolist()
    n_val = max(1, round(cfg.data.val_fraction * len(texts)))
    val_idx, train_idx = sorted(order[:n_val]), sorted(order[n_val:])
    train_texts = [texts[i] for i in train_idx]
    tokenizer = _text_tokenizer(cfg, train_texts)
    n_ctx = cfg.model.get("n_ctx")
    tokens, mask = encode_texts(
        tokenizer, texts, max_len=n_ctx, truncate=cfg.data.truncate, where=str(cfg.data.path)
    )
    tr, va = torch.tensor(train_idx), torch.tensor(val_idx)
    _, pad = special_ids(tokenizer)
    return LMData(
        Split(tokens[tr], mask[tr], mask[tr]),
        Split(tokens[va], mask[va], mask[va]),
        tokenizer,
        False,
        pad,
    )


def build_data(cfg: LabConfig) -> LMData:
    """The splits and tokenizer of ``cfg`` (deterministic for a fixed ``train.seed``)."""
    return _task_data(cfg) if cfg.data.task is not None else _text_data(cfg)
