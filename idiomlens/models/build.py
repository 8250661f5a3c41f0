"""Build a freshly initialised ``HookedTransformer`` from a config, seeded locally.

Trainers (the demo model's, the small-transformer lab) construct their models here, so
that models are built only inside :mod:`idiomlens.models`. Initialisation never reads
or advances torch's global RNG: TransformerLens's own init runs inside
``torch.random.fork_rng`` and is then overwritten, parameter by parameter in
``named_parameters()`` order, from one local ``torch.Generator``:

- every weight (a parameter whose name starts with ``W_``) ~ ``N(0, init_std^2)``;
- every bias (a name starting with ``b``) = 0;
- norm scales keep TransformerLens's ones.

The same config and seed give the same weights bit for bit, whatever else ran before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

__all__ = ["build_model", "hooked_config"]


def hooked_config(fields: Mapping[str, Any] | HookedTransformerConfig) -> HookedTransformerConfig:
    """A ``HookedTransformerConfig`` from a dict of its fields (or the config itself).

    ``dtype`` may be a name (``"float32"``); ``seed`` is forced to ``None`` (a set seed
    makes TransformerLens seed the global RNGs); ``device`` defaults to ``"cpu"``.

    >>> hooked_config({"n_layers": 1, "d_model": 8, "n_ctx": 4, "d_head": 4, "attn_only": True}).d_vocab
    -1
    """
    if isinstance(fields, HookedTransformerConfig):
        fields = {k: v for k, v in fields.to_dict().items() if k in _init_fields()}
    raw = dict(fields)
    if isinstance(raw.get("dtype"), str):
        raw["dtype"] = getattr(torch, raw["dtype"].removeprefix("torch."))
    raw["seed"] = None
    raw.setdefault("device", "cpu")
    return HookedTransformerConfig(**raw)


def _init_fields() -> set[str]:
    return {k for k, f in HookedTransformerConfig.__dataclass_fields__.items() if f.init}


def build_model(
    cfg: Mapping[str, Any] | HookedTransformerConfig,
    *,
    seed: int,
    tokenizer: Any = None,
    init_std: float | None = None,
) -> HookedTransformer:
    """A new ``HookedTransformer`` for ``cfg``, initialised from ``torch.Generator(seed)``.

    Args:
        cfg: a ``HookedTransformerConfig`` or a dict of its fields (see :func:`hooked_config`).
        seed: seed of the local generator every weight is drawn from.
        tokenizer: attached to the model (``model.tokenizer``) when given.
        init_std: standard deviation of the weights (default ``cfg.initializer_range``,
            which TransformerLens sets to ``0.8 / sqrt(d_model)`` when unset).

    The model is returned in train mode on ``cfg.device``.

    >>> cfg = {"n_layers": 1, "d_model": 8, "d_head": 4, "n_ctx": 4, "d_vocab": 5, "attn_only": True}
    >>> a, b = build_model(cfg, seed=0), build_model(cfg, seed=0)
    >>> torch.equal(a.W_E, b.W_E), torch.equal(a.W_E, build_model(cfg, seed=1).W_E)
    (True, False)
    """
    hooked = hooked_config(cfg)
    device = torch.device(hooked.device or "cpu")
    with torch.random.fork_rng(devices=[]):  # TL's own init draws from the global RNG
        model = HookedTransformer(hooked, tokenizer=tokenizer, move_to_device=False)
    std = hooked.initializer_range if init_std is None else init_std
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            leaf = name.split(".")[-1]
            if leaf.startswith("W_"):
                param.copy_(torch.randn(param.shape, generator=gen) * std)
            elif leaf.startswith("b"):
                param.zero_()
    if device != torch.device("cpu"):
        model.to(device)
    return model
