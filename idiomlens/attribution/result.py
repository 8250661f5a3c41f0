"""The result of a direct logit attribution run."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .._io import Result

__all__ = ["DLAResult"]

_HEAD = re.compile(r"^L(\d+)H(\d+)$")


@dataclass
class DLAResult(Result):
    """Per-example, per-component direct logit attribution, averaged per position group.

    Attributes:
        ids: example ids, corpus order.
        labels: component names (``embed``, ``pos_embed``, ``LlHh``, ``Ll_mlp``, ``bias``).
        groups: ``("idiom", "literal")`` in next-token mode (position ``p`` is in the idiom
            group when its target ``x_{p+1}`` is an idiom token, literal when it is in
            ``L``); ``("logit_diff",)`` / ``("logit",)`` in logit-difference mode.
        attributions: ``[example, component, group]`` mean attribution over the group's
            positions; ``NaN`` where the group has no position in that example.
        logits: ``[example, group]`` the model's mean target logit (difference) there.
        unembed_bias: ``[example, group]`` mean ``b_U[t]`` (``- b_U[d]``) there, so
            ``attributions.sum(1) + unembed_bias == logits`` (see :meth:`max_error`).
        counts: ``[example, group]`` number of positions averaged.
        mode: ``"next_token"`` or ``"logit_diff"``.
        n_layers, n_heads: model shape, for :meth:`head_matrix`.
    """

    ids: tuple[str, ...]
    labels: tuple[str, ...]
    groups: tuple[str, ...]
    attributions: Float[Tensor, "example component group"]
    logits: Float[Tensor, "example group"]
    unembed_bias: Float[Tensor, "example group"]
    counts: Int[Tensor, "example group"]
    mode: str = "next_token"
    n_layers: int = 0
    n_heads: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    per_example: ClassVar[tuple[str, ...]] = ("attributions", "logits", "unembed_bias", "counts")

    def group_index(self, group: str) -> int:
        """Index of ``group`` on the last axis of ``attributions``."""
        if group not in self.groups:
            raise KeyError(f"unknown group {group!r}; groups are {self.groups}")
        return self.groups.index(group)

    def mean(self) -> Float[Tensor, "component group"]:
        """Mean over examples, ignoring examples where a group is empty (``NaN``)."""
        return torch.nanmean(self.attributions, dim=0)

    def top(
        self, k: int = 10, group: str | None = None, *, absolute: bool = False
    ) -> list[tuple[str, float]]:
        """The ``k`` components with the largest mean attribution in ``group``.

        ``group`` defaults to the first group; ``absolute=True`` ranks by magnitude.
        Returns ``[(label, mean attribution), ...]``, ties broken by component order.
        """
        g = self.group_index(group or self.groups[0])
        values = self.mean()[:, g]
        key = values.abs() if absolute else values
        key = torch.nan_to_num(key, nan=-float("inf"))
        order = torch.sort(key, descending=True, stable=True).indices[:k]
        return [(self.labels[i], float(values[i])) for i in order.tolist()]

    def head_matrix(self, group: str | None = None) -> Float[Tensor, "layer head_index"]:
        """Mean head attributions of ``group`` arranged as ``[layer, head]``."""
        g = self.group_index(group or self.groups[0])
        means = self.mean()[:, g]
        out = torch.full((self.n_layers, self.n_heads), float("nan"))
        for i, label in enumerate(self.labels):
            m = _HEAD.match(label)
            if m:
                out[int(m[1]), int(m[2])] = means[i]
        return out

    def max_error(self) -> float:
        """Largest ``|sum(components) + b_U - logit|`` over examples and non-empty groups."""
        err = (self.attributions.sum(1) + self.unembed_bias - self.logits).abs()
        return float(torch.nan_to_num(err, nan=0.0).max()) if err.numel() else 0.0

    def to_dataframe(self) -> Any:
        """Long format: one row per ``(id, component, group)`` with ``attribution`` and ``count``."""
        import pandas as pd

        n_ex, n_c, n_g = self.attributions.shape
        idx = torch.cartesian_prod(torch.arange(n_ex), torch.arange(n_c), torch.arange(n_g))
        e, c, g = idx.unbind(-1)  # row-major, like attributions.reshape(-1)
        return pd.DataFrame(
            {
                "id": [self.ids[i] for i in e.tolist()],
                "component": [self.labels[i] for i in c.tolist()],
                "group": [self.groups[i] for i in g.tolist()],
                "attribution": self.attributions.reshape(-1).tolist(),
                "count": self.counts[e, g].tolist(),
            }
        )

    def plot(self, group: str | None = None, **kwargs: Any) -> Any:
        """A plotly figure (see :func:`idiomlens.viz.dla.plot_dla`)."""
        from ..viz.dla import plot_dla

        return plot_dla(self, group=group, **kwargs)
