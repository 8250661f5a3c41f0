"""Training fixtures, cached per session: tiny HF checkpoints saved offline, a small idiom
corpus and finetune runs (fine-tuning tests); small lab configs and a trained copy-task
run (lab tests). Each test file stays well under a minute on 1 CPU."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors.torch import load_file

from idiomlens.data import demo_corpus
from idiomlens.training.finetune import FinetuneResult, finetune
from idiomlens.training.lab import train_lm
from tests.models.conftest import build_hf, save_checkpoint
from tests.models.conftest import tokens as tokens  # the shared token fixture

#: Small, fast runs: high learning rate so that every trained tensor visibly moves.
RUN_DEFAULTS = {
    "max_steps": 6,
    "batch_size": 8,
    "checkpoints": 2,
    "lr": 1e-2,
    "max_length": 48,
    "progress": False,
    "device": "cpu",
}


def folder_digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file below ``folder`` (to prove nothing was changed)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def weights(folder: Path) -> dict:
    """The tensors of a checkpoint folder (full model or adapter)."""
    files = sorted(folder.glob("*.safetensors"))
    assert files, f"no safetensors in {folder}"
    out = {}
    for f in files:
        out.update(load_file(f))
    return out


@pytest.fixture(scope="session")
def corpus():
    return demo_corpus()[:32]


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory) -> Callable[[str], Path]:
    """``family -> saved randomized HF checkpoint folder`` (with the tiny tokenizer)."""
    cache: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in cache:
            cache[family] = save_checkpoint(
                build_hf(family), tmp_path_factory.mktemp(f"base-{family}")
            )
        return cache[family]

    return get


@pytest.fixture(scope="session")
def run(base_dir, corpus, tmp_path_factory) -> Callable[..., FinetuneResult]:
    """``run(method, family="gpt2", **options) -> FinetuneResult``, cached per session."""
    cache: dict[str, FinetuneResult] = {}

    def get(method: str, family: str = "gpt2", **options) -> FinetuneResult:
        kwargs = {**RUN_DEFAULTS, **options}
        key = json.dumps([method, family, sorted(kwargs.items())], default=str)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"run-{method}-{family}") / "out"
            cache[key] = finetune(base_dir(family), corpus, method=method, out=out, **kwargs)
        return cache[key]

    return get


# ---- the small-transformer lab ----------------------------------------------------------

#: A 2-layer attention-only model on the copy task: solves it (>= 99% held-out token
#: accuracy) in about 60 steps; ~2-4 s on one CPU thread.
COPY = {
    "model": {"n_layers": 2, "d_model": 32, "n_heads": 4, "attn_only": True},
    "data": {"task": "copy", "length": 5, "n_symbols": 8, "n_train": 4000, "n_val": 300},
    "train": {
        "steps": 120,
        "batch_size": 64,
        "lr": 3e-3,
        "warmup": 10,
        "eval_every": 40,
        "progress": False,
    },
}


def tiny_config(**train):
    """A config that trains in well under a second (for plumbing tests)."""
    return {
        "model": {"n_layers": 1, "d_model": 16, "n_heads": 2, "attn_only": True},
        "data": {"task": "copy", "length": 3, "n_symbols": 5, "n_train": 200, "n_val": 40},
        "train": {
            "steps": 12,
            "batch_size": 8,
            "lr": 1e-2,
            "eval_every": 4,
            "progress": False,
            **train,
        },
    }


@pytest.fixture(scope="session")
def copy_run(tmp_path_factory):
    return train_lm(COPY, out=tmp_path_factory.mktemp("lab") / "copy")
