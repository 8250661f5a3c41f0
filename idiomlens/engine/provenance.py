"""Provenance recorded in every result's ``meta``: which model, which data, which settings.

:func:`run_meta` is the one place a result's ``meta`` dict is built, so every analysis
records the same fields: the model (name, shape, dtype, how it was loaded and processed
— :func:`~idiomlens.models.model_info`), a hash of the exact aligned examples it saw,
the analysis parameters, and the library version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from torch import Tensor

from ..data.align import AlignedExample
from ..models.info import model_info

__all__ = ["corpus_hash", "run_meta", "model_meta"]


def corpus_hash(aligned: Sequence[AlignedExample] | Tensor) -> str:
    """SHA-256 over the ids, token ids, idiom spans and BOS flags of ``aligned``, in order.

    Analyses that take token tensors instead of a corpus (patching, logit-difference
    attribution) pass the ``[batch, pos]`` tokens: the hash then covers their rows.
    """
    digest = hashlib.sha256()
    if isinstance(aligned, Tensor):
        for row in aligned.tolist():
            digest.update(repr(tuple(row)).encode())
        return digest.hexdigest()
    for ex in aligned:
        digest.update(repr((ex.id, ex.tokens, ex.span, ex.p0)).encode())
    return digest.hexdigest()


def model_meta(model: Any) -> dict[str, Any]:
    """Name, shape, dtype and loading provenance of ``model`` (JSON-able)."""
    cfg = model.cfg
    return {
        "model_name": str(getattr(cfg, "model_name", "")),
        "n_layers": int(cfg.n_layers),
        "n_heads": int(cfg.n_heads),
        "d_model": int(cfg.d_model),
        "dtype": str(cfg.dtype),
        "model": model_info(model).to_dict(),
    }


def run_meta(
    model: Any, aligned: Sequence[AlignedExample] | Tensor, **params: Any
) -> dict[str, Any]:
    """The ``meta`` of a result computed by ``model`` on ``aligned`` with ``params``.

    >>> from idiomlens.models import tiny_model
    >>> from idiomlens.engine import prepare
    >>> from idiomlens.data import IdiomExample
    >>> model = tiny_model()
    >>> meta = run_meta(model, prepare(model, [IdiomExample("a", "Hi there.", (0, 2))]), kind="idiom")
    >>> meta["kind"], meta["n_examples"], len(meta["corpus_hash"])
    ('idiom', 1, 64)
    """
    from .. import __version__

    return {
        **model_meta(model),
        **params,
        "corpus_hash": corpus_hash(aligned),
        "n_examples": len(aligned),
        "idiomlens_version": __version__,
    }
