"""Attribution patching: a first-order estimate of every patching effect at once.

For a site activation ``a`` (a head's ``hook_z``, ``hook_resid_pre``, ...), patching the
clean value into the corrupted run changes the metric by approximately

    change(cell) = sum over the cell's entries of (a_clean - a_corrupted) * d metric / d a

with the gradient taken on the *corrupted* run (Nanda, "Attribution patching", 2023).
The sum runs over the batch, the feature axis (``d_head`` / ``d_model``) and, unless
the kind is by position, over positions. Cost: two forwards (clean, corrupted) and one
backward for every cell of every layer. Effects are the estimated *changes*, not
patched metric values (``PatchingResult.method == "attribution"``; ``.change`` is
comparable with exact patching). :func:`check_attribution_patching` re-checks the top
cells by exact patching.

>>> import torch, idiomlens
>>> model = idiomlens.tiny_model(n_layers=2, n_heads=4)
>>> clean, corrupted = torch.tensor([[0, 5, 6, 7]]), torch.tensor([[0, 5, 9, 7]])
>>> metric = lambda logits: logits[:, -1, 3].mean()
>>> idiomlens.attribution_patch_heads(model, clean, corrupted, metric).effects.shape
torch.Size([2, 4])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..engine import capture, corpus_hash, forward, run_meta
from .patching import PatchKind, cell_masks, check_pair, get_kind
from .patching_result import PatchingResult
from .patching_runner import Metric, forward_kwargs, run_cells

__all__ = [
    "attribution_patch",
    "attribution_patch_heads",
    "attribution_scores",
    "check_attribution_patching",
    "AttributionCheck",
    "spearman",
]


def attribution_scores(
    clean: Float[Tensor, "batch pos *rest"],
    corrupted: Float[Tensor, "batch pos *rest"],
    grad: Float[Tensor, "batch pos *rest"],
    *,
    per_head: bool,
    by_position: bool,
) -> Float[Tensor, "..."]:
    """``(clean - corrupted) * grad`` summed to ``[head]``, ``[pos, head]`` or ``[pos]``.

    ``rest`` is ``(head_index, d_head)`` when ``per_head`` else ``(d_model,)``.

    >>> ones = torch.ones(2, 3, 4, 5)
    >>> attribution_scores(2 * ones, ones, ones, per_head=True, by_position=False).tolist()
    [30.0, 30.0, 30.0, 30.0]
    """
    product = (clean - corrupted) * grad
    if per_head:
        pattern = "b p h d -> p h" if by_position else "b p h d -> h"
    else:
        pattern = "b p d -> p" if by_position else "b p d ->"
    return einops.reduce(product, pattern, "sum")


def _corrupted_grads(
    model: Any,
    corrupted: Tensor,
    metric: Metric,
    names: list[str],
    kwargs: dict[str, Any],
) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor]:
    """Corrupted activations and ``d metric / d act`` at ``names``, one forward + backward.

    Each hook adds a zero leaf ``delta`` to its activation, so the gradient w.r.t. ``delta``
    is the gradient w.r.t. the activation (all downstream paths included) whether or not
    the model's parameters require grad; parameter ``.grad`` is left untouched.
    """
    acts: dict[str, Tensor] = {}
    deltas: dict[str, Tensor] = {}

    def hook(act: Tensor, hook: Any) -> Tensor:
        acts[hook.name] = act.detach()
        deltas[hook.name] = torch.zeros_like(act, requires_grad=True)
        return act + deltas[hook.name]

    with torch.enable_grad():
        logits = forward(model, corrupted, [(n, hook) for n in names], logits=True, **kwargs)
        value = metric(logits).reshape(())
        grads = torch.autograd.grad(value, [deltas[n] for n in names], allow_unused=True)
    zeros = {n: torch.zeros_like(acts[n]) for n, g in zip(names, grads, strict=True) if g is None}
    return acts, {n: zeros.get(n, g) for n, g in zip(names, grads, strict=True)}, value.detach()


def attribution_patch(
    model: Any,
    clean_tokens: Int[Tensor, "*batch pos"],
    corrupted_tokens: Int[Tensor, "*batch pos"],
    metric: Metric,
    *,
    kind: str = "head_all_pos",
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    ids: tuple[str, ...] = (),
) -> PatchingResult:
    """Attribution-patching estimate of every cell of ``kind`` (see the module docstring).

    Arguments as in :func:`~idiomlens.interventions.patching.patch`. ``effects`` has the
    same shape as the exact result and holds the estimated metric *change*.
    """
    spec: PatchKind = get_kind(kind)
    clean, corrupted = check_pair(clean_tokens, corrupted_tokens)
    names = [spec.hook(layer) for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        clean_logits, clean_cache = capture(
            model, clean, names, logits=True, **forward_kwargs(model, clean, attention_mask)
        )
        clean_metric = metric(clean_logits).reshape(())
    acts, grads, corrupted_metric = _corrupted_grads(
        model, corrupted, metric, names, forward_kwargs(model, corrupted, attention_mask)
    )
    effects = torch.stack(
        [
            attribution_scores(
                clean_cache[n],
                acts[n],
                grads[n],
                per_head=spec.per_head,
                by_position=spec.by_position,
            )
            for n in names
        ]
    )
    clean_value, corrupted_value = torch.stack([clean_metric, corrupted_metric]).tolist()
    return PatchingResult(
        effects=effects.detach().cpu(),
        kind=kind,
        axes=spec.axes,
        clean_metric=clean_value,
        corrupted_metric=corrupted_value,
        method="attribution",
        ids=tuple(ids),
        meta=run_meta(
            model,
            clean,
            corrupted_hash=corpus_hash(corrupted),
            kind=kind,
            method="attribution",
            metric=getattr(metric, "__qualname__", type(metric).__name__),
        ),
    )


def attribution_patch_heads(
    model: Any,
    clean_tokens: Int[Tensor, "*batch pos"],
    corrupted_tokens: Int[Tensor, "*batch pos"],
    metric: Metric,
    *,
    by_position: bool = False,
    **kwargs: Any,
) -> PatchingResult:
    """Attribution patching of every head's ``hook_z``: ``[layer, head]`` or ``[layer, pos, head]``.

    The estimate of :func:`~idiomlens.patch_heads`'s change (``effects - corrupted_metric``):
    ``sum_{batch, pos, d_head} (z_clean - z_corrupted) * d metric / d z`` at the corrupted
    run (positions not summed when ``by_position``). Two forwards and one backward.
    """
    kind = "head_by_pos" if by_position else "head_all_pos"
    return attribution_patch(model, clean_tokens, corrupted_tokens, metric, kind=kind, **kwargs)


# --------------------------------------------------------------------------- checking


def _ranks(x: Float[Tensor, " n"]) -> Float[Tensor, " n"]:
    """Ranks ``0 .. n-1`` with ties given their average rank."""
    values, order = torch.sort(x, stable=True)
    _, inverse, counts = torch.unique_consecutive(values, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0)
    average = (ends - counts + ends - 1).double() / 2
    ranks = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
    ranks[order] = average[inverse]
    return ranks


def spearman(x: Float[Tensor, " n"], y: Float[Tensor, " n"]) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks); ``nan`` if undefined.

    >>> spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 30.0, 20.0]))
    0.5
    """
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(
            f"spearman needs two 1-D tensors of equal length, got {x.shape}, {y.shape}"
        )
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = (rx.square().sum() * ry.square().sum()).sqrt()
    return float(rx @ ry / denom) if denom > 0 else float("nan")


@dataclass(frozen=True)
class AttributionCheck:
    """Top-k attribution cells re-checked by exact patching.

    Attributes:
        labels: cell labels (``L1H3`` / ``L1P5H3`` / ``L1P5``), by decreasing ``|estimate|``.
        estimate: attribution-patching estimates of the metric change ``[k]``.
        exact: exact patching changes (patched metric - corrupted metric) ``[k]``.
        spearman: rank correlation of ``estimate`` and ``exact`` over the k cells.
        attribution: the full attribution result.
    """

    labels: tuple[str, ...]
    estimate: Float[Tensor, " k"]
    exact: Float[Tensor, " k"]
    spearman: float
    attribution: PatchingResult

    def to_dataframe(self) -> Any:
        """One row per checked cell: ``label``, ``estimate``, ``exact``."""
        import pandas as pd

        return pd.DataFrame(
            {"label": self.labels, "estimate": self.estimate.numpy(), "exact": self.exact.numpy()}
        )


def check_attribution_patching(
    model: Any,
    clean_tokens: Int[Tensor, "*batch pos"],
    corrupted_tokens: Int[Tensor, "*batch pos"],
    metric: Metric,
    *,
    k: int = 10,
    by_position: bool = False,
    attention_mask: Int[Tensor, "batch pos"] | None = None,
) -> AttributionCheck:
    """Attribution-patch all heads, then exactly patch the ``k`` cells with the largest
    ``|estimate|`` (stacked in few forwards) and report both values and their Spearman
    correlation.
    """
    kind = "head_by_pos" if by_position else "head_all_pos"
    attribution = attribution_patch(
        model, clean_tokens, corrupted_tokens, metric, kind=kind, attention_mask=attention_mask
    )
    flat = attribution.effects.flatten()
    top = torch.sort(flat.abs(), descending=True, stable=True).indices[:k]
    clean, corrupted = check_pair(clean_tokens, corrupted_tokens)
    cells_per_layer = flat.shape[0] // model.cfg.n_layers
    layer_of = top // cells_per_layer
    masks = cell_masks(kind, corrupted.shape[1], model.cfg.n_heads)
    by_layer = {
        int(layer): masks[top[layer_of == layer] % cells_per_layer] for layer in layer_of.unique()
    }
    values, baselines = run_cells(
        model,
        clean,
        corrupted,
        metric,
        hook=get_kind(kind).hook,
        masks=by_layer,
        attention_mask=attention_mask,
    )
    exact = torch.empty(top.shape[0], device=baselines.device)
    for layer, v in values.items():
        exact[layer_of.to(exact.device) == layer] = v - baselines[1]
    exact = exact.cpu()
    labels = attribution.labels
    return AttributionCheck(
        labels=tuple(labels[i] for i in top.tolist()),
        estimate=flat[top],
        exact=exact,
        spearman=spearman(flat[top], exact),
        attribution=attribution,
    )
