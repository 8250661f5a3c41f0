"""Drive direct logit attribution (:mod:`idiomlens.attribution.dla`) over a corpus on the
engine, or over a prompt batch with one forward."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from ..data.batching import Batch
from ..engine import Collector, collect, model_device, prepare, run_meta
from .dla import component_labels, dla_forward, dla_outputs, dla_sites, dla_state
from .result import DLAResult

__all__ = ["direct_logit_attribution", "logit_diff_attribution", "dla_collector"]

log = logging.getLogger(__name__)

GROUPS = ("idiom", "literal")


def _group_weights(batch: Batch) -> Tensor:
    """``[batch, pos, group]`` 1 where position ``p``'s target ``x_{p+1}`` is an idiom /
    literal token (the target of position ``p`` is the next token)."""
    real = batch.real_mask()
    nxt = torch.zeros_like(real)
    nxt[:, :-1] = True
    groups = torch.stack([batch.idiom_mask(), batch.literal_mask()], dim=-1)
    return (torch.roll(groups, -1, dims=1) & (real & nxt)[..., None]).float()


def dla_collector(model: Any) -> Collector:
    """The engine spec of next-token DLA: per batch and example, the attributions
    ``[component, group]``, the model's logit, the ``b_U`` term (group means) and the
    number of positions per group."""

    def setup(batch: Batch) -> dict[str, Any]:
        state = dla_state(model, torch.roll(batch.tokens, -1, dims=1))
        state["_weights"] = _group_weights(batch)
        return state

    def finish(batch: Batch, state: dict[str, Any], logits: Any) -> dict[str, Tensor]:
        attr, logit, b_u = dla_outputs(model, state)
        weights = state["_weights"]
        count = weights.sum(1)  # [batch, group]; 0 -> NaN mean (0 / 0)
        return {
            "attributions": torch.einsum("bpc,bpg->bcg", attr, weights) / count[:, None, :],
            "logits": torch.einsum("bp,bpg->bg", logit, weights) / count,
            "unembed_bias": torch.einsum("bp,bpg->bg", b_u, weights) / count,
            "counts": count.long(),
        }

    return Collector(sites=dla_sites(model), setup=setup, finish=finish, desc="DLA")


def direct_logit_attribution(
    model: Any,
    corpus: Iterable[Any],
    *,
    batch_tokens: int | None = None,
    padding_side: str = "right",
    progress: bool = True,
) -> DLAResult:
    """Next-token direct logit attribution per component, averaged per idiom/literal group.

    At every real position ``p < T - 1`` the target is the next token ``t = x_{p+1}``; the
    logit ``logits[p, t]`` is split into ``embed``, ``pos_embed`` (standard positional
    embeddings), every head ``LlHh``, every ``Ll_mlp`` and ``bias`` (see
    :mod:`idiomlens.attribution.dla`); each example then averages the positions whose
    target is an idiom token (group ``"idiom"``) and a literal token (``"literal"``).

    Args:
        model: a ``HookedTransformer`` with a tokenizer.
        corpus: an :class:`~idiomlens.IdiomCorpus` (or aligned examples).
        batch_tokens: padded-token budget per forward (default
            :data:`~idiomlens.engine.DEFAULT_BATCH_TOKENS`).
        padding_side: ``"right"`` or ``"left"`` (results are the same).
        progress: show a progress bar.

    Returns:
        :class:`DLAResult` with ``attributions [example, component, group]`` in corpus order;
        a group without positions (e.g. an idiom at the very start with no BOS) is ``NaN``.

    >>> from idiomlens.models import tiny_model
    >>> from idiomlens.data import IdiomExample
    >>> res = direct_logit_attribution(
    ...     tiny_model(), [IdiomExample("a", "He spilled the beans.", (3, 20))], progress=False
    ... )
    >>> res.attributions.shape, res.groups
    (torch.Size([1, 13, 2]), ('idiom', 'literal'))
    >>> res.max_error() < 1e-4
    True
    """
    aligned = prepare(model, corpus, what="direct_logit_attribution")
    out = collect(
        model,
        aligned,
        dla_collector(model),
        batch_tokens=batch_tokens,
        padding_side=padding_side,
        progress=progress,
    )
    return DLAResult(
        ids=out.ids,
        labels=component_labels(model),
        groups=GROUPS,
        attributions=out["attributions"],
        logits=out["logits"],
        unembed_bias=out["unembed_bias"],
        counts=out["counts"],
        mode="next_token",
        n_layers=model.cfg.n_layers,
        n_heads=model.cfg.n_heads,
        meta=run_meta(
            model, aligned, mode="next_token", padding_side=padding_side, batch_tokens=batch_tokens
        ),
    )


def _token_ids(model: Any, values: Sequence[int | str] | Tensor, what: str) -> Tensor:
    if isinstance(values, Tensor):
        return values.long()
    out = []
    for v in values:
        if isinstance(v, str):
            try:
                v = model.to_single_token(v)
            except Exception as err:  # noqa: BLE001 - re-raised with context
                raise ValueError(f"{what} {v!r} is not a single token") from err
        out.append(int(v))
    return torch.tensor(out, dtype=torch.long)


def logit_diff_attribution(
    model: Any,
    tokens: Int[Tensor, "batch pos"],
    *,
    positions: Sequence[int] | Int[Tensor, " batch"],
    targets: Sequence[int | str] | Int[Tensor, " batch"],
    distractors: Sequence[int | str] | Int[Tensor, " batch"] | None = None,
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    ids: Sequence[str] | None = None,
) -> DLAResult:
    """Attribute ``logit[target] - logit[distractor]`` at one chosen position per prompt.

    The classic answer-vs-wrong-answer setup: row ``b`` of ``tokens`` is read at
    ``positions[b]`` (padded coordinates) and its logit difference
    ``logits[b, pos, targets[b]] - logits[b, pos, distractors[b]]`` is split into the same
    components as :func:`direct_logit_attribution`. Targets and distractors are token ids
    or single-token strings (``" beans"``). Without distractors the plain target logit is
    attributed.

    Returns:
        :class:`DLAResult` with one group, ``("logit_diff",)`` (or ``("logit",)``),
        ``attributions [batch, component, 1]`` and ``mode="logit_diff"``.
    """
    device = model_device(model)
    tokens = tokens.to(device)
    n = tokens.shape[0]
    pos = torch.as_tensor(positions, dtype=torch.long, device=device)
    tgt = _token_ids(model, targets, "target").to(device)
    dis = None if distractors is None else _token_ids(model, distractors, "distractor").to(device)
    for name, t in (("positions", pos), ("targets", tgt), ("distractors", dis)):
        if t is not None and t.shape != (n,):
            raise ValueError(f"{name} must have one entry per prompt ({n}), got {tuple(t.shape)}")
    if bool(((pos < 0) | (pos >= tokens.shape[1])).any()):
        raise ValueError(f"positions {pos.tolist()} out of range for {tokens.shape[1]} tokens")
    # the same target at every position; only the chosen one is kept
    target_grid = tgt[:, None].expand_as(tokens)
    dis_grid = None if dis is None else dis[:, None].expand_as(tokens)
    kwargs = {} if attention_mask is None else {"attention_mask": attention_mask.to(device)}
    attr, logit, b_u = dla_forward(model, tokens, target_grid, dis_grid, **kwargs)
    rows = torch.arange(n, device=device)
    return DLAResult(
        ids=tuple(ids) if ids is not None else tuple(str(i) for i in range(n)),
        labels=component_labels(model),
        groups=("logit_diff",) if dis is not None else ("logit",),
        attributions=attr[rows, pos][..., None].cpu(),
        logits=logit[rows, pos][:, None].cpu(),
        unembed_bias=b_u[rows, pos][:, None].cpu(),
        counts=torch.ones((n, 1), dtype=torch.long),
        mode="logit_diff",
        n_layers=model.cfg.n_layers,
        n_heads=model.cfg.n_heads,
        meta=run_meta(
            model,
            tokens,
            mode="logit_diff",
            positions=pos.tolist(),
            targets=tgt.tolist(),
            distractors=None if dis is None else dis.tolist(),
        ),
    )
