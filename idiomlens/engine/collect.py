"""The forward-collect primitive every analysis runs on.

An analysis describes *what* it computes per batch as a :class:`Collector` (plain data:
hook sites with reduce functions, an optional per-batch setup, a finish step, whether
the logits are needed); :func:`collect` does everything else, once, for all of them:

1. the corpus is aligned once and checked against the context (:func:`~.corpus.prepare`);
2. examples are grouped by length into padded batches under a token budget
   (:data:`DEFAULT_BATCH_TOKENS` unless the caller gives one), on the model's device;
3. each batch runs one forward with the collector's hooks, stopped right after the last
   hook point it needs (:func:`~.forward.forward`) unless the logits are needed;
4. ``finish`` turns what the hooks stored into per-example outputs (batch axis first),
   which are moved to the CPU and scattered back into corpus order;
5. a progress bar counts examples; on an out-of-memory error the budget is halved, the
   failed batch is re-planned and retried, and the new budget is logged and kept.

Results never depend on batch composition: every reduce sees whole padded batches with
masks (:class:`~idiomlens.data.Batch`), and outputs are per example.

A reduce function has the signature ``reduce(activation, batch, state)``; it reads the
activation (``[batch, ...]``, the model's dtype, on the model's device), writes into the
per-batch ``state`` dict, and may return a tensor to replace the activation (that is how
ablations are written). ``state`` starts as ``setup(batch)`` (e.g. masks, buffers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..data.align import AlignedExample
from ..data.batching import DEFAULT_BATCH_TOKENS, Batch, make_batch, plan_groups
from .corpus import prepare
from .forward import forward, model_device

__all__ = [
    "Site",
    "Collector",
    "Collected",
    "collect",
    "iter_collect",
    "site_hooks",
    "plan_groups",
    "is_out_of_memory",
    "DEFAULT_BATCH_TOKENS",
]

log = logging.getLogger(__name__)

Reduce = Callable[[Tensor, Batch, dict[str, Any]], Tensor | None]


@dataclass(frozen=True)
class Site:
    """A hook point and the reduce function that runs there on every batch.

    Args:
        name: a TransformerLens hook name (see :mod:`idiomlens.models.sites`).
        reduce: ``reduce(activation, batch, state) -> None | replacement``.
    """

    name: str
    reduce: Reduce


def _no_setup(batch: Batch) -> dict[str, Any]:
    return {}


def _state_outputs(batch: Batch, state: dict[str, Any], logits: Tensor | None) -> dict[str, Any]:
    return {k: v for k, v in state.items() if not k.startswith("_")}


@dataclass(frozen=True, kw_only=True)
class Collector:
    """What an analysis computes on each batch (the spec :func:`collect` runs).

    Args:
        sites: the hook sites, or ``sites(batch, state) -> sites`` when they depend on
            the batch.
        setup: ``setup(batch) -> state``, run before the forward (masks, buffers).
        finish: ``finish(batch, state, logits) -> {name: value}`` after the forward;
            each value is a tensor with the batch axis first or a list with one entry
            per example. Default: every ``state`` entry whose name does not start
            with ``_``.
        logits: run the forward to the end and pass the logits to ``finish``.
        rows_per_example: forward rows each example takes (e.g. one per stacked
            ablation condition); the token budget is divided by it.
        desc: the progress bar's label.
        forward_kwargs: extra keywords for every forward (besides the batch's own).
    """

    sites: Sequence[Site] | Callable[[Batch, dict[str, Any]], Sequence[Site]] = ()
    setup: Callable[[Batch], dict[str, Any]] = _no_setup
    finish: Callable[[Batch, dict[str, Any], Tensor | None], Mapping[str, Any]] = _state_outputs
    logits: bool = False
    rows_per_example: int = 1
    desc: str = "collect"
    forward_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rows_per_example < 1:
            raise ValueError(f"rows_per_example must be >= 1, got {self.rows_per_example}")

    def run_batch(self, model: Any, batch: Batch) -> dict[str, Any]:
        """Per-example outputs of one batch (on the model's device)."""
        state = self.setup(batch)
        sites = self.sites(batch, state) if callable(self.sites) else self.sites
        hooks = site_hooks(sites, batch, state)
        kwargs = {**batch.forward_kwargs(), **self.forward_kwargs}
        logits = forward(model, batch.tokens, hooks, logits=self.logits, **kwargs)
        return dict(self.finish(batch, state, logits))


def site_hooks(
    sites: Sequence[Site], batch: Batch | None, state: dict[str, Any]
) -> list[tuple[str, Callable[..., Any]]]:
    """TransformerLens hooks that call each site's ``reduce(activation, batch, state)``.

    For analyses that also run their reduce functions on plain token tensors
    (``batch=None``) through :func:`~.forward.forward`.
    """
    return [(s.name, partial(_call_reduce, s.reduce, batch, state)) for s in sites]


def _call_reduce(
    reduce: Reduce, batch: Batch | None, state: dict, activation: Tensor, hook: Any
) -> Any:
    return reduce(activation, batch, state)


@dataclass
class Collected:
    """Per-example outputs of :func:`collect`, in corpus order.

    Attributes:
        aligned: the aligned examples (corpus order).
        outputs: ``{name: tensor [example, ...] | list}`` on the CPU.
    """

    aligned: list[AlignedExample]
    outputs: dict[str, Any]

    @property
    def ids(self) -> tuple[str, ...]:
        """Example ids in corpus order."""
        return tuple(a.id for a in self.aligned)

    def __getitem__(self, name: str) -> Any:
        return self.outputs[name]


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an accelerator (or host) out-of-memory error."""
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(err, oom):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def iter_collect(
    model: Any,
    corpus: Iterable[Any],
    collector: Collector,
    *,
    batch_tokens: int | None = None,
    batch_size: int | None = None,
    padding_side: str = "right",
    progress: bool = True,
    aligned: list[AlignedExample] | None = None,
) -> Iterator[tuple[Tensor, dict[str, Any]]]:
    """Stream ``(indices, outputs)`` per batch: corpus positions and per-example outputs
    (on the CPU). The streaming form of :func:`collect`, for outputs too large to hold
    (write each batch to disk) or reductions over the whole corpus (sum them).

    ``aligned`` skips alignment when the caller has already called :func:`prepare`.
    """
    examples = aligned if aligned is not None else prepare(model, corpus)
    device = model_device(model)
    rows = collector.rows_per_example
    budget = max(1, (batch_tokens or DEFAULT_BATCH_TOKENS) // rows)
    lengths = [len(ex) for ex in examples]
    pending = list(plan_groups(lengths, budget, batch_size))
    with (
        torch.inference_mode(),
        tqdm(total=len(examples), desc=collector.desc, unit="ex", disable=not progress) as bar,
    ):
        while pending:
            group = pending.pop(0)
            batch = make_batch(
                [examples[i] for i in group],
                padding_side=padding_side,
                indices=group,
                device=device,
            )
            try:
                out = collector.run_batch(model, batch)
            except (RuntimeError, MemoryError) as err:
                if not is_out_of_memory(err):
                    raise
                budget = _halve(budget, batch, err)
                rest = [i for g in [group, *pending] for i in g]
                sub = list(plan_groups([lengths[i] for i in rest], budget, batch_size))
                pending = [[rest[j] for j in g] for g in sub]
                continue
            yield batch.indices.cpu(), _to_cpu(out, batch.size)
            bar.update(batch.size)


def _halve(budget: int, batch: Batch, err: BaseException) -> int:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if batch.size == 1:
        raise MemoryError(
            f"out of memory on example {batch.ids[0]!r} ({batch.n_pos} tokens) alone; "
            "use a smaller dtype or a larger device"
        ) from err
    new = max(1, min(budget, batch.size * batch.n_pos) // 2)
    log.warning(
        "out of memory on a %d x %d batch; batch_tokens -> %d", batch.size, batch.n_pos, new
    )
    return new


def _to_cpu(out: dict[str, Any], n: int) -> dict[str, Any]:
    moved = {}
    for name, value in out.items():
        size = value.shape[0] if isinstance(value, Tensor) and value.dim() else len(value)
        if size != n:
            raise ValueError(f"output {name!r} has {size} rows for a batch of {n} examples")
        moved[name] = value.cpu() if isinstance(value, Tensor) else list(value)
    return moved


def collect(
    model: Any,
    corpus: Iterable[Any],
    collector: Collector,
    *,
    batch_tokens: int | None = None,
    batch_size: int | None = None,
    padding_side: str = "right",
    progress: bool = True,
) -> Collected:
    """Run ``collector`` over ``corpus`` and return its per-example outputs in corpus order.

    Args:
        model: a ``HookedTransformer``.
        corpus: an :class:`~idiomlens.IdiomCorpus`, raw examples or aligned examples.
        collector: what to compute per batch.
        batch_tokens: padded-token budget per forward (default
            :data:`DEFAULT_BATCH_TOKENS`, divided by ``rows_per_example``).
        batch_size: at most this many examples per batch.
        padding_side: ``"right"`` or ``"left"``; results do not depend on it.
        progress: show a progress bar over examples.

    >>> from idiomlens.models import tiny_model
    >>> from idiomlens.data import IdiomExample
    >>> def store_norm(resid, batch, state):
    ...     state["norm"] = resid.norm(dim=-1)[:, 0]      # [batch]
    >>> spec = Collector(sites=[Site("blocks.0.hook_resid_pre", store_norm)])
    >>> corpus = [IdiomExample("a", "Break a leg!", (0, 11)), IdiomExample("b", "Hi there.", (0, 2))]
    >>> out = collect(tiny_model(), corpus, spec, progress=False)
    >>> out.ids, tuple(out["norm"].shape)
    (('a', 'b'), (2,))
    """
    aligned = prepare(model, corpus)
    outputs: dict[str, Any] = {}
    for indices, out in iter_collect(
        model,
        aligned,
        collector,
        batch_tokens=batch_tokens,
        batch_size=batch_size,
        padding_side=padding_side,
        progress=progress,
        aligned=aligned,
    ):
        for name, value in out.items():
            _place(outputs, name, indices, value, len(aligned))
    return Collected(aligned, outputs)


def _place(outputs: dict[str, Any], name: str, indices: Tensor, value: Any, n: int) -> None:
    """Write one batch's values at their corpus positions; the full ``[n, ...]`` tensor
    (or ``n``-list) is allocated when ``name`` is first seen, so nothing is held twice."""
    if name not in outputs:
        is_tensor = isinstance(value, Tensor)
        outputs[name] = (
            torch.zeros((n, *value.shape[1:]), dtype=value.dtype) if is_tensor else [None] * n
        )
    full = outputs[name]
    if isinstance(full, Tensor):
        full[indices] = value
        return
    for i, v in zip(indices.tolist(), value, strict=True):
        full[i] = v
