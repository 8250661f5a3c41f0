"""Drive :func:`~idiomlens.attribution.dla.dla_forward` over a corpus or a prompt batch."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor
from tqdm.auto import tqdm

from ..data.align import AlignedExample, align
from ..data.batching import iter_batches
from .dla import component_labels, dla_forward
from .result import DLAResult

__all__ = ["direct_logit_attribution", "logit_diff_attribution", "aligned_corpus"]

log = logging.getLogger(__name__)

GROUPS = ("idiom", "literal")


def aligned_corpus(model: Any, corpus: Iterable[Any]) -> list[AlignedExample]:
    """``corpus`` aligned to ``model``'s tokenizer (already aligned examples pass through)."""
    items = list(corpus)
    if items and all(isinstance(x, AlignedExample) for x in items):
        return items
    return list(align(items, model))


def _model_device(model: Any) -> torch.device:
    return model.W_U.device


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
        batch_tokens: padded-token budget per forward (default 8192).
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
    aligned = aligned_corpus(model, corpus)
    labels = component_labels(model)
    n_ex = len(aligned)
    attributions = torch.full((n_ex, len(labels), len(GROUPS)), float("nan"))
    logits = torch.full((n_ex, len(GROUPS)), float("nan"))
    unembed_bias = torch.full((n_ex, len(GROUPS)), float("nan"))
    counts = torch.zeros((n_ex, len(GROUPS)), dtype=torch.long)
    batches = iter_batches(
        aligned, batch_tokens=batch_tokens, padding_side=padding_side, device=_model_device(model)
    )
    for batch in tqdm(batches, desc="DLA", disable=not progress, unit="batch"):
        # target of position p is x_{p+1}; groups are decided by the target's membership
        targets = torch.roll(batch.tokens, -1, dims=1)
        real = batch.real_mask()
        nxt = torch.zeros_like(real)
        nxt[:, :-1] = True
        groups = torch.stack([batch.idiom_mask(), batch.literal_mask()], dim=-1)
        groups = torch.roll(groups, -1, dims=1) & (real & nxt)[..., None]  # [batch, pos, group]
        attr, logit, b_u = dla_forward(model, batch.tokens, targets, **batch.forward_kwargs())
        weights = groups.float()
        count = weights.sum(1)  # [batch, group]; 0 -> NaN mean (0 / 0)
        attributions[batch.indices.cpu()] = (
            torch.einsum("bpc,bpg->bcg", attr, weights) / count[:, None, :]
        ).cpu()
        logits[batch.indices.cpu()] = (torch.einsum("bp,bpg->bg", logit, weights) / count).cpu()
        unembed_bias[batch.indices.cpu()] = (torch.einsum("bp,bpg->bg", b_u, weights) / count).cpu()
        counts[batch.indices.cpu()] = count.long().cpu()
    return DLAResult(
        ids=tuple(a.id for a in aligned),
        labels=labels,
        groups=GROUPS,
        attributions=attributions,
        logits=logits,
        unembed_bias=unembed_bias,
        counts=counts,
        mode="next_token",
        n_layers=model.cfg.n_layers,
        n_heads=model.cfg.n_heads,
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
    device = _model_device(model)
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
    )
