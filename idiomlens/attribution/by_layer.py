"""MLP-level direct logit attribution beside the heads: a by-layer view of a DLAResult.

A :class:`~idiomlens.DLAResult` already splits the logit into ``embed``, ``pos_embed``,
every head ``LlHh``, every ``Ll_mlp`` and ``bias`` (METHODS.md, "Direct logit
attribution"). :func:`dla_by_layer` regroups the mean attributions per layer: the sum
over the layer's heads, the layer's MLP, and the largest single head, so attention and
MLP contributions can be read side by side. Nothing is recomputed.

>>> import torch
>>> from idiomlens.attribution import DLAResult
>>> labels = ("embed", "L0H0", "L0H1", "L0_mlp", "bias")
>>> att = torch.tensor([[[0.5], [1.0], [-0.25], [2.0], [0.0]]])
>>> dla = DLAResult(ids=("a",), labels=labels, groups=("idiom",), attributions=att,
...     logits=att.sum(1), unembed_bias=torch.zeros(1, 1), counts=torch.ones(1, 1).long(),
...     n_layers=1, n_heads=2)
>>> dla_by_layer(dla)[["layer", "heads", "mlp", "top_head"]].values.tolist()
[[0, 0.75, 2.0, 'L0H0']]
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["dla_by_layer"]

_HEAD = re.compile(r"^L(\d+)H(\d+)$")
_MLP = re.compile(r"^L(\d+)_mlp$")


def dla_by_layer(dla: Any, group: str | None = None) -> Any:
    """One row per layer: ``heads`` (sum over heads), ``mlp``, ``total`` and the top head.

    Args:
        dla: a :class:`~idiomlens.DLAResult`.
        group: the position group (default the result's first group).

    Returns:
        DataFrame with ``layer, heads, mlp, total, top_head, top_head_value`` (means over
        examples, ``NaN``-examples skipped as in ``DLAResult.mean``); ``mlp`` is ``NaN``
        for attention-only models.
    """
    import pandas as pd

    g = dla.group_index(group or dla.groups[0])
    means = dla.mean()[:, g].tolist()
    rows = {
        layer: {"layer": layer, "heads": 0.0, "mlp": float("nan"), "top": None}
        for layer in range(dla.n_layers)
    }
    for label, value in zip(dla.labels, means, strict=True):
        if m := _HEAD.match(label):
            row = rows[int(m[1])]
            row["heads"] += value
            if row["top"] is None or value > row["top"][1]:
                row["top"] = (label, value)
        elif m := _MLP.match(label):
            rows[int(m[1])]["mlp"] = value
    frame = pd.DataFrame(
        [
            {
                "layer": r["layer"],
                "heads": r["heads"],
                "mlp": r["mlp"],
                "total": r["heads"] + (0.0 if r["mlp"] != r["mlp"] else r["mlp"]),
                "top_head": r["top"][0] if r["top"] else None,
                "top_head_value": r["top"][1] if r["top"] else float("nan"),
            }
            for r in rows.values()
        ]
    )
    frame.attrs["group"] = dla.groups[g]
    return frame
