"""``run_analysis``: chunked, cached, resumable and shardable execution of an analysis.

The corpus is cut into chunks of ``chunk_size`` examples (boundaries depend only on the
corpus size and ``chunk_size``, never on what was computed before). Each chunk is
computed independently, saved atomically in the store and recorded with checksums, so a
run killed at any point continues where it stopped and ends with exactly the result of
an uninterrupted run. The chunks are merged with ``Result.concat`` in corpus order and
the merged result is saved in ``out`` itself (``HeadScores.load(out)`` works).

Out-of-memory errors: analyses built on :func:`idiomlens.engine.collect` halve their
token budget per batch themselves and only give up (``MemoryError``) when a single
example does not fit, which no smaller budget can fix. The executor's chunk-level
retry below is for analyses that run their own forwards (patching, user functions):
on an out-of-memory ``RuntimeError`` escaping the call, the chunk is retried with half
the budget, down to ``min_batch_tokens``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from idiomlens._io import Result

from ..data.batching import DEFAULT_BATCH_TOKENS
from ..engine.collect import is_out_of_memory
from .distributed import DistContext, distributed_context, shard_context
from .registry import Analysis, resolve_analysis
from .spec import RunSpec, model_identity
from .store import ResultStore, StoreMismatch

__all__ = ["run_analysis", "plan_chunks", "is_out_of_memory", "OutOfMemoryBudget"]

log = logging.getLogger(__name__)


class OutOfMemoryBudget(RuntimeError):
    """The analysis ran out of memory even at the smallest token budget."""


def plan_chunks(n_examples: int, chunk_size: int) -> list[tuple[int, int, int]]:
    """``(index, start, end)`` of each chunk, ``end`` exclusive.

    >>> plan_chunks(5, 2)
    [(0, 0, 2), (1, 2, 4), (2, 4, 5)]
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return [
        (i, s, min(s + chunk_size, n_examples))
        for i, s in enumerate(range(0, n_examples, chunk_size))
    ]


@dataclass
class _Budget:
    """The current token budget, shared by all chunks of a run (halved on OOM).

    ``tokens=None`` lets the analysis use its own default until the first OOM error.
    """

    tokens: int | None
    floor: int


def _call_chunk(
    entry: Analysis, model: Any, corpus: Any, kwargs: dict[str, Any], budget: _Budget | None
) -> Result:
    """Run the analysis on one chunk, halving the token budget on out-of-memory errors."""
    fn = entry.resolve()
    while True:
        call = dict(kwargs)
        if budget is not None and budget.tokens is not None:
            call["batch_tokens"] = budget.tokens
        try:
            return fn(model, corpus, **call)
        except (RuntimeError, MemoryError) as err:
            if budget is None or not is_out_of_memory(err):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            current = budget.tokens or DEFAULT_BATCH_TOKENS
            if current <= budget.floor:
                raise OutOfMemoryBudget(
                    f"{entry.name}: out of memory even with batch_tokens={current} "
                    f"(the floor); use a smaller model/dtype or a larger device"
                ) from err
            budget.tokens = max(budget.floor, current // 2)
            log.warning(
                "%s: out of memory; retrying with batch_tokens=%d", entry.name, budget.tokens
            )


def _chunk_kwargs(entry: Analysis, params: dict[str, Any], corpus: Any) -> dict[str, Any]:
    """Keywords for every chunk call: the parameters, no inner progress bar, and the full
    corpus as the reference of analyses whose statistics must not depend on the chunk."""
    kwargs = dict(params)
    kwargs.pop("batch_tokens", None)
    if entry.accepts("progress"):
        kwargs["progress"] = False
    ref = entry.reference_param
    if entry.chunked and ref is not None and kwargs.get(ref) is None:
        kwargs[ref] = corpus
    return kwargs


def _progress_bar(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ex", disable=not enabled, dynamic_ncols=True)


def _prepare_store(
    store: ResultStore, spec: RunSpec, ctx: DistContext, resume: bool, info: dict
) -> Result | None:
    """Main worker: serve a finished result, or make the folder hold this run's spec."""
    key = spec.key
    stored = store.read_spec_key()
    if resume and stored == key:
        final = store.load_final(key)
        if final is not None:
            return final
    elif store.has_content() and (stored != key or not resume):
        if ctx.is_shard_job:
            raise StoreMismatch(
                f"{store.root} holds a different run (key {str(stored)[:12]}..., this run "
                f"{key[:12]}...); shard jobs never delete results: use a fresh --out"
            )
        if stored != key:
            log.warning(
                "%s holds a different run (weights, corpus or parameters changed); starting fresh",
                store.root,
            )
        store.reset()
    if not ctx.is_shard_job:  # no other writer is active yet
        store.remove_temporaries()
    if stored != key or not (store.root / "spec.json").exists():
        store.write_spec(spec, extra=info)
    return None


def _compute_chunks(
    entry, model, corpus, store, key, plan, ctx, resume, kwargs, budget, progress
) -> dict[int, Result]:
    """Compute this worker's missing chunks; returns the results computed here."""
    records, _ = store.read_manifests(key)
    mine = [c for c in plan if ctx.owns(c[0])]
    done: dict[int, Result] = {}
    bar = _progress_bar(sum(e - s for _, s, e in mine), entry.name, progress and ctx.is_main)
    with bar:
        for index, start, end in mine:
            if resume and store.valid_chunk(records, index, start, end):
                bar.update(end - start)
                continue
            result = _call_chunk(entry, model, corpus[start:end], kwargs, budget)
            _check_ids(entry, result, corpus, start, end)
            store.write_chunk(key, index, start, end, result)
            done[index] = result
            bar.update(end - start)
    return done


def _check_ids(entry: Analysis, result: Any, corpus: Any, start: int, end: int) -> None:
    if not isinstance(result, Result):
        raise TypeError(f"analysis {entry.name!r} returned a {type(result).__name__}, not a Result")
    if not entry.chunked:  # e.g. patching: ids name pairs, not examples
        return
    expected = set(corpus.ids[start:end])
    stray = [i for i in result.ids if i not in expected]
    if stray:
        raise ValueError(f"analysis {entry.name!r} returned ids outside its chunk: {stray[:3]}")


def _merge(entry, model, corpus, store, key, plan, kwargs, budget, computed) -> Result:
    """Load (or, if missing, compute) every chunk and save the merged result."""
    records, _ = store.read_manifests(key)
    parts = []
    for index, start, end in plan:
        if index in computed:
            parts.append(computed[index])
            continue
        if not store.valid_chunk(records, index, start, end):
            log.info("%s: computing missing chunk %d", entry.name, index)
            result = _call_chunk(entry, model, corpus[start:end], kwargs, budget)
            store.write_chunk(key, index, start, end, result)
            records, _ = store.read_manifests(key)
            parts.append(result)
            continue
        parts.append(store.load_chunk(records, index))
    merged = type(parts[0]).concat(parts) if len(parts) > 1 else parts[0]
    store.write_final(key, merged, records)
    return merged


def run_analysis(
    analysis: str | Analysis | Callable[..., Any],
    model: Any,
    corpus: Any,
    *,
    out: str | Path,
    params: dict[str, Any] | None = None,
    chunk_size: int = 256,
    batch_tokens: int | None = None,
    min_batch_tokens: int = 128,
    progress: bool = True,
    resume: bool = True,
    shard: tuple[int, int] | None = None,
    model_source: str | None = None,
) -> Result | None:
    """Run ``analysis`` on ``corpus`` in chunks, cached and resumable in folder ``out``.

    Args:
        analysis: a registered name (``"score"``, ``"dla"``, ``"ablate"``, ...), an
            :class:`~idiomlens.runs.registry.Analysis`, or a function
            ``fn(model, corpus, **params) -> Result`` with a per-example result.
        model: the HookedTransformer (its weights are hashed into the run key).
        corpus: an ``IdiomCorpus``.
        out: the store folder; the merged result is saved there, with ``spec.json``.
        params: the analysis's parameters (JSON data; part of the run key).
        chunk_size: examples per chunk (the unit of saving and resuming).
        batch_tokens: padded-token budget per forward pass, for analyses that take it.
            On an out-of-memory error it is halved (down to ``min_batch_tokens``) and the
            chunk retried; the lower budget is kept for the rest of the run.
        progress: show a tqdm bar (examples/s) on the main process.
        resume: reuse finished chunks / a finished result of the same run. ``False``
            deletes what ``out`` holds and recomputes.
        shard: ``(i, n)``: compute only chunks ``c`` with ``c % n == i`` and return
            ``None`` (SLURM job arrays); a later run without ``shard`` merges.
        model_source: how the model was named (recorded in ``spec.json``, not keyed).

    Returns:
        The merged result, in corpus order, with ``.ids`` (``None`` for a shard job).
        Under ``torchrun`` every rank computes its share and gets the merged result.

    A finished result with the same key (same analysis, parameters, weights, tokenizer,
    corpus and library version) is loaded, not recomputed. If ``out`` holds a different
    run, a warning is logged and it is replaced.

    >>> import tempfile
    >>> from idiomlens.models import tiny_model
    >>> from idiomlens.data import IdiomCorpus, IdiomExample
    >>> corpus = IdiomCorpus([IdiomExample("a", "He spilled the beans.", (3, 20))])
    >>> scores = run_analysis("score", tiny_model(), corpus, out=tempfile.mkdtemp(),
    ...                       progress=False)  # doctest: +SKIP
    """
    entry = resolve_analysis(analysis)
    params = dict(params or {})
    if len(corpus) == 0:
        raise ValueError(f"{entry.name}: the corpus is empty")
    if batch_tokens is None:
        batch_tokens = params.get("batch_tokens")
    from idiomlens import __version__

    spec = RunSpec(
        analysis=entry.name,
        params={k: v for k, v in params.items() if k != "batch_tokens"},
        model=model_identity(model, source=model_source),
        corpus_sha256=corpus.content_hash(),
        n_examples=len(corpus),
        library_version=__version__,
    )
    device = getattr(getattr(model, "cfg", None), "device", None)
    ctx = shard_context(shard) if shard is not None else distributed_context(device)
    store = ResultStore(out, writer=ctx.writer)
    info = {"chunk_size": chunk_size, "device": str(device), "world_size": ctx.world_size}
    final = (
        _prepare_store(store, spec, ctx, resume, info) if ctx.is_main or ctx.is_shard_job else None
    )
    ctx.barrier()
    if ctx.collective and not ctx.is_main and resume:
        final = store.load_final(spec.key)
    if final is not None:
        log.info("%s: reusing the finished result in %s", entry.name, store.root)
        return final

    if entry.check_alignment:  # tokenising is cheap: fail before any compute
        from idiomlens.engine import prepare

        prepare(model, corpus)
    plan = plan_chunks(len(corpus), chunk_size if entry.chunked else len(corpus))
    kwargs = _chunk_kwargs(entry, params, corpus)
    budget = None
    if entry.accepts("batch_tokens"):
        budget = _Budget(tokens=batch_tokens, floor=min_batch_tokens)
    started = time.perf_counter()
    computed = _compute_chunks(
        entry, model, corpus, store, spec.key, plan, ctx, resume, kwargs, budget, progress
    )
    if ctx.is_shard_job:
        log.info(
            "%s: shard %d/%d done; run without a shard to merge",
            entry.name,
            ctx.rank,
            ctx.world_size,
        )
        return None
    ctx.barrier()
    merged = None
    if ctx.is_main:
        merged = _merge(entry, model, corpus, store, spec.key, plan, kwargs, budget, computed)
        log.info(
            "%s: %d examples in %.1f s -> %s",
            entry.name,
            len(corpus),
            time.perf_counter() - started,
            store.root,
        )
    ctx.barrier()
    if merged is None:
        merged = store.load_final(spec.key)
        if merged is None:
            raise RuntimeError(f"rank {ctx.rank}: the merged result in {store.root} is missing")
    return merged
