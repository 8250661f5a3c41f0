"""Small lab runs shared by the lab tests (trained once per session)."""

from __future__ import annotations

import pytest

from idiomlens.training.lab import train_lm

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
