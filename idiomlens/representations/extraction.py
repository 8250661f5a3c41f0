"""``extract``: hidden representations of one site and pool, per layer, for a corpus.

Sites and pools are METHODS.md's ("Representations"; :mod:`.pools` has the tables).
Everything runs on the forward-collect engine (:func:`~idiomlens.engine.collect`):
token-budgeted padded batches, one hook per requested layer that pools the whole batch
on the model's device (only ``[batch, d_model]`` rows, or the real token rows for
``pool="tokens"``, ever leave it, already in the storage dtype), the forward stopped
right after the last layer needed, results in corpus order whatever the batching.

With ``out=`` the run is chunked, content-keyed and resumable
(:func:`~idiomlens.runs.layered.run_layered`): each chunk of ``chunk_size`` examples is
saved as its own folder and the final folder is assembled by streaming, one file per
layer, so host memory is bounded by one chunk, not by the corpus; rerunning the same
call serves the saved result, and a killed run continues at the first missing chunk.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data.align import AlignedExample
from ..data.batching import Batch
from ..data.example import IdiomExample
from ..data.texts import TextExample
from ..engine import Collector, Site, collect, prepare, run_meta
from ..engine.provenance import corpus_hash
from .pools import (
    SPAN_POOLS,
    apply_pool,
    check_examples,
    check_site_pool,
    prepare_pool,
    site_affine,
    site_hook,
    site_layers,
)
from .result import Representations

__all__ = ["extract", "STORAGE_DTYPES"]

#: Storage dtypes a representation may be saved in.
STORAGE_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_SCALARS = (str, int, float, bool)


@dataclass(frozen=True, kw_only=True)
class _Plan:
    """What one extraction computes: hooks per layer, the affine step, the storage dtype."""

    site: str
    pool: str
    layers: tuple[int, ...]
    hooks: dict[int, str]
    affine: dict[int, tuple[Tensor | None, Tensor | None]]
    dtype: torch.dtype

    def collector(self) -> Collector:
        sites = [
            Site(self.hooks[layer], partial(_reduce, key=f"L{layer}", plan=self, layer=layer))
            for layer in self.layers
        ]
        # default finish: every state entry not starting with "_" (one [batch, d] per layer)
        extra = {"finish": _finish_tokens} if self.pool == "tokens" else {}
        return Collector(
            sites=sites, setup=partial(_setup, pool=self.pool), desc=f"extract {self.site}", **extra
        )


def _setup(batch: Batch, *, pool: str) -> dict:
    return {"_pool": prepare_pool(batch, pool)}  # once per batch, shared by every layer


def _reduce(act: Tensor, batch: Batch, state: dict, *, key: str, plan: _Plan, layer: int) -> None:
    rows = apply_pool(act, state["_pool"], plan.pool)  # float32, on the device
    w, b = plan.affine[layer]
    if w is not None:
        rows = rows * w
    if b is not None:
        rows = rows + b
    state[key] = rows.to(plan.dtype)


def _finish_tokens(batch: Batch, state: dict, logits: Any) -> dict:
    """Token rows -> one ``[T_b - p0, d]`` CPU tensor per example (one transfer per layer)."""
    counts = (batch.lengths - batch.p0).tolist()
    return {k: list(v.cpu().split(counts)) for k, v in state.items() if not k.startswith("_")}


def _storage_dtype(dtype: Any) -> torch.dtype:
    from ..models.load import resolve_dtype

    resolved = resolve_dtype(dtype)
    if resolved not in STORAGE_DTYPES:
        raise ValueError(f"storage dtype must be float32, bfloat16 or float16, got {dtype!r}")
    return resolved


def _corpus_items(corpus: Iterable[Any]) -> tuple[list[Any], str, dict[str, tuple]]:
    """Examples to align, the corpus kind (``idiom`` / ``text``) and per-example labels."""
    items = list(corpus)
    if not items:
        raise ValueError("extract needs a non-empty corpus")
    if all(isinstance(x, TextExample) for x in items):
        names = list(dict.fromkeys(k for x in items for k in x.labels))
        labels = {k: tuple(x.labels.get(k) for x in items) for k in names}
        return [x.as_idiom_example() for x in items], "text", labels
    if all(isinstance(x, IdiomExample) for x in items):
        names = list(
            dict.fromkeys(k for x in items for k, v in x.meta.items() if isinstance(v, _SCALARS))
        )
        labels = {"label": tuple(x.label for x in items)}
        for k in names:
            labels.setdefault(k, tuple(_scalar(x.meta.get(k)) for x in items))
        return items, "idiom", labels
    if all(isinstance(x, AlignedExample) for x in items):
        return items, "idiom", {"label": tuple(x.label for x in items)}
    kinds = sorted({type(x).__name__ for x in items})
    raise TypeError(f"extract takes IdiomExample, TextExample or AlignedExample items, got {kinds}")


def _scalar(value: Any) -> Any:
    return value if isinstance(value, _SCALARS) else None


def _plan(model: Any, site: str, pool: str, layers: Any, dtype: torch.dtype) -> _Plan:
    layers = site_layers(model, site, layers)
    return _Plan(
        site=site,
        pool=pool,
        layers=layers,
        hooks={layer: site_hook(model, site, layer) for layer in layers},
        affine={layer: site_affine(model, site, layer) for layer in layers},
        dtype=dtype,
    )


def _compute(
    model: Any, aligned: list[AlignedExample], plan: _Plan, **engine: Any
) -> dict[int, Tensor]:
    """``{layer: [rows, d_model]}`` for ``aligned`` (corpus order), in the storage dtype."""
    out = collect(model, aligned, plan.collector(), **engine)
    if plan.pool == "tokens":  # per example [T_b - p0, d] -> one [tokens, d] per layer
        return {layer: torch.cat(out[f"L{layer}"]) for layer in plan.layers}
    return {layer: out[f"L{layer}"] for layer in plan.layers}


def _token_fields(model: Any, aligned: list[AlignedExample], labels: dict) -> tuple[dict, dict]:
    """Token-row arrays and per-row labels (example labels repeated, plus ``token``)."""
    lengths = [len(ex) - ex.p0 for ex in aligned]
    arrays = {
        "token_ids": torch.tensor(
            [t for ex in aligned for t in ex.tokens[ex.p0 :]], dtype=torch.long
        ),
        "example_index": torch.repeat_interleave(torch.arange(len(aligned)), torch.tensor(lengths)),
        "positions": torch.tensor(
            [p for ex in aligned for p in range(ex.p0, len(ex))], dtype=torch.long
        ),
    }
    per_row = {k: tuple(v for vals, n in zip(values, lengths, strict=True) for v in [vals] * n)
               for k, values in labels.items()}  # fmt: skip
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is not None and "token" not in per_row:
        ids = arrays["token_ids"].tolist()
        text = {t: tokenizer.decode([t]) for t in set(ids)}
        per_row["token"] = tuple(text[t] for t in ids)
    return arrays, per_row


def _representations(model, aligned, labels, plan, meta, **engine) -> Representations:  # type: ignore[no-untyped-def]
    tensors = _compute(model, aligned, plan, **engine)
    arrays: dict[str, Tensor] = {}
    if plan.pool == "tokens":
        arrays, labels = _token_fields(model, aligned, labels)
    return Representations(
        layers=plan.layers,
        ids=[ex.id for ex in aligned],
        site=plan.site,
        pool=plan.pool,
        labels=labels,
        meta=meta,
        tensors=tensors,
        **arrays,
    )


def _check_request(site: str, pool: str, kind: str, average_duplicates: bool, name: str) -> None:
    check_site_pool(site, pool)
    if average_duplicates and pool != "tokens":
        raise ValueError(f"average_duplicates=True needs pool='tokens', got pool={pool!r}")
    if kind == "text" and pool in SPAN_POOLS:
        raise ValueError(
            f"pool {pool!r} needs marked idiom spans, but {name} is a text corpus (TextExample "
            "items have no idiom); use last, mean or tokens"
        )


def extract(
    model: Any,
    corpus: Iterable[Any],
    *,
    site: str = "resid_post",
    layers: Sequence[int] | int | None = None,
    pool: str = "last",
    average_duplicates: bool = False,
    out: str | Path | None = None,
    dtype: torch.dtype | str = torch.float32,
    batch_tokens: int | None = None,
    batch_size: int | None = None,
    padding_side: str = "right",
    chunk_size: int = 256,
    resume: bool = True,
    progress: bool = True,
) -> Representations:
    """Extract per-layer representations of ``corpus`` at ``site``, pooled by ``pool``.

    Args:
        model: a ``HookedTransformer``. Load it with ``processing=NO_PROCESSING`` for
            vectors comparable with Hugging Face (weight processing centres and folds
            weights, which moves residual vectors and changes distances; ``meta``
            records what was done).
        corpus: an :class:`~idiomlens.IdiomCorpus` / idiom examples, or a
            :class:`~idiomlens.data.texts.TextCorpus` / text examples (labelled texts,
            e.g. from :func:`~idiomlens.data.few_shot_prompts`).
        site: ``resid_pre`` (= HF ``hidden_states[l]`` unprocessed), ``resid_mid``,
            ``resid_post``, ``norm`` (block ``l``'s input norm output with its weight and
            bias, = HF ``input_layernorm``; ``l = n_layers`` is the final norm),
            ``attn_out``, ``mlp_out``.
        layers: layer indices (default all; ``norm`` has ``0 .. n_layers``).
        pool: ``last`` (T-1), ``idiom_last`` (e), ``mean`` (p0..T-1, BOS excluded),
            ``idiom`` (mean over I), ``literal`` (mean over L), ``tokens`` (a row per
            token p0..T-1, with ``token_ids``, ``example_index``, ``positions``).
        average_duplicates: with ``pool="tokens"``: one row per distinct token id
            (the mean of its occurrences; see :mod:`.average`).
        out: a folder: run chunked, resumable and cached there (see the module doc);
            ``Representations.load(out)`` reads it later. ``None``: in memory.
        dtype: storage dtype, ``float32`` (default), ``bfloat16`` or ``float16`` (half
            the disk); pools are computed in float32 first.
        batch_tokens, batch_size, padding_side: batching (results do not depend on it).
        chunk_size: examples per saved chunk with ``out``.
        resume: with ``out``: reuse what a run with the same key saved.
        progress: show a progress bar.

    Returns:
        :class:`Representations` with ``.ids`` (corpus order), ``.labels`` (``label``
        and scalar ``meta`` fields of idiom examples, or a text's labels; repeated per
        token row, plus ``token``), ``.meta`` (model, processing, corpus hash, params).

    Raises:
        ValueError: an unknown site or pool, layers out of range, a span pool on a text
            corpus, an empty literal set (naming the example), a bad dtype.

    >>> from idiomlens.models import tiny_model
    >>> from idiomlens.data import IdiomExample
    >>> reps = extract(tiny_model(n_layers=2), [IdiomExample("a", "He spilled the beans.", (3, 20))],
    ...                site="norm", pool="idiom", progress=False)
    >>> reps.layers, tuple(reps.vectors(2).shape), reps.labels["label"]
    ((0, 1, 2), (1, 32), ('figurative',))
    """
    items, kind, labels = _corpus_items(corpus)
    name = repr(getattr(corpus, "name", "the corpus"))
    _check_request(site, pool, kind, average_duplicates, name)
    storage = _storage_dtype(dtype)
    plan = _plan(model, site, pool, layers, storage)
    aligned = prepare(model, items, what="extract")
    check_examples(aligned, pool)
    params = {"site": site, "pool": pool, "layers": list(plan.layers), "average_duplicates":
              average_duplicates, "storage_dtype": str(storage).removeprefix("torch."),
              "corpus_kind": kind, "norm_affine": any(w is not None for w, _ in plan.affine.values())}  # fmt: skip
    meta = run_meta(model, aligned, **params)
    engine = {"batch_tokens": batch_tokens, "batch_size": batch_size, "padding_side": padding_side}
    if out is None:
        reps = _representations(model, aligned, labels, plan, meta, progress=progress, **engine)
        if average_duplicates:
            from .average import average_duplicates as average

            reps = average(reps)
        return reps
    return _extract_to(
        model, aligned, labels, plan, meta, params, Path(out), chunk_size, resume, progress, engine
    )


def _extract_to(
    model, aligned, labels, plan, meta, params, out, chunk_size, resume, progress, engine
):  # type: ignore[no-untyped-def]
    """The chunked, resumable run behind ``extract(..., out=...)``."""
    from .. import __version__
    from ..runs.layered import run_layered
    from ..runs.spec import RunSpec, model_identity
    from .disk import assemble_chunks

    digest = hashlib.sha256(corpus_hash(aligned).encode())
    digest.update(json.dumps(labels, sort_keys=True, default=str).encode())
    spec = RunSpec(analysis="extract", params=params, model=model_identity(model),
                   corpus_sha256=digest.hexdigest(), n_examples=len(aligned), library_version=__version__)  # fmt: skip

    def compute(start: int, end: int) -> Representations:
        part = {k: v[start:end] for k, v in labels.items()}
        return _representations(
            model, aligned[start:end], part, plan, meta, progress=False, **engine
        )

    def assemble(folders: list[Path], root: Path) -> list[str]:
        return assemble_chunks(folders, root, average_duplicates=params["average_duplicates"])

    return run_layered(spec, compute, assemble, Representations.load, out=out,
                       chunk_size=chunk_size, resume=resume, progress=progress)  # fmt: skip
