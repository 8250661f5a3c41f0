"""``PatchingResult``: the typed result of exact and attribution patching."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from .._io import Result

__all__ = ["PatchingResult"]


@dataclass
class PatchingResult(Result):
    """Effects of patching each cell, with the two unpatched baselines.

    Attributes:
        effects: ``[layer, head]``, ``[layer, pos, head]`` or ``[layer, pos]`` (``axes``).
            ``method="exact"``: the metric of the patched corrupted run (TransformerLens's
            convention). ``method="attribution"``: the linear estimate of the *change*,
            ``(act_clean - act_corrupted) . d metric / d act`` (see
            :func:`~idiomlens.interventions.attribution_patch_heads`).
        kind: a key of :data:`PATCH_KINDS`.
        axes: axis names of ``effects``.
        clean_metric, corrupted_metric: the metric on the unpatched clean / corrupted runs.
        method: ``"exact"`` or ``"attribution"``.
        ids: pair ids (``"clean|corrupted"``), or empty.

    ``change`` is comparable across methods: the metric change caused by the patch.
    """

    effects: Tensor
    kind: str
    axes: tuple[str, ...]
    clean_metric: float
    corrupted_metric: float
    method: str = "exact"
    ids: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    per_example: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        self.axes = tuple(self.axes)
        self.ids = tuple(self.ids)
        if self.method not in ("exact", "attribution"):
            raise ValueError(f"method must be 'exact' or 'attribution', got {self.method!r}")
        if self.effects.ndim != len(self.axes):
            raise ValueError(f"effects {tuple(self.effects.shape)} do not match axes {self.axes}")

    @property
    def change(self) -> Float[Tensor, "..."]:
        """Metric change caused by each patch (``effects - corrupted_metric`` when exact)."""
        return self.effects - self.corrupted_metric if self.method == "exact" else self.effects

    @property
    def recovered(self) -> Float[Tensor, "..."]:
        """``change / (clean_metric - corrupted_metric)``: 1 = the patch restores the clean run."""
        return self.change / (self.clean_metric - self.corrupted_metric)

    @property
    def labels(self) -> tuple[str, ...]:
        """Cell labels in ``effects.flatten()`` order: ``L1H3``, ``L1P5H3`` or ``L1P5``."""
        letters = {"layer": "L", "pos": "P", "head": "H"}
        ranges = [range(n) for n in self.effects.shape]
        idx = torch.cartesian_prod(*[torch.arange(len(r)) for r in ranges])
        idx = idx.reshape(-1, len(ranges)).tolist()
        return tuple(
            "".join(f"{letters[a]}{i}" for a, i in zip(self.axes, row, strict=True)) for row in idx
        )

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` cells with the largest ``|change|`` as ``(label, change)``; ties: lower index."""
        flat = self.change.flatten().nan_to_num(0.0)
        order = torch.sort(flat.abs(), descending=True, stable=True).indices[:k].tolist()
        labels = self.labels
        return [(labels[i], float(flat[i])) for i in order]

    def to_dataframe(self) -> Any:
        """Long format: one row per cell with the axis indices, ``effect``, ``change``, ``recovered``."""
        import pandas as pd

        idx = torch.cartesian_prod(*[torch.arange(n) for n in self.effects.shape])
        frame = pd.DataFrame(idx.reshape(-1, len(self.axes)).numpy(), columns=list(self.axes))
        frame.insert(0, "label", self.labels)
        frame["effect"] = self.effects.flatten().numpy()
        frame["change"] = self.change.flatten().numpy()
        frame["recovered"] = self.recovered.flatten().numpy()
        return frame

    def plot(self, **kwargs: Any) -> Any:
        """A plotly heatmap (see :func:`idiomlens.viz.patching.plot_patching`)."""
        from ..viz.patching import plot_patching

        return plot_patching(self, **kwargs)
