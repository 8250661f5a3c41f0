"""``run_probes``: probes on a saved representations folder, cached and resumable.

Probes read a ``Representations`` folder, not a model and a corpus, so they do not go
through :func:`idiomlens.runs.run_analysis`; they use the same parts of the run engine
directly. The run key is a :class:`~idiomlens.runs.RunSpec` whose model and corpus
identity is the SHA-256 of the representations' own files (``representations.json``,
the token file and each layer file, names and bytes; other files in the folder, such as
a probe output written inside it, do not count), with the canonicalised probe parameters.
The :class:`~idiomlens.runs.ResultStore` in ``out`` then works as for every analysis:
layers are fitted in chunks of ``layers_per_chunk`` (all at once by default), each chunk
saved atomically with checksums; a killed run recomputes only missing chunks, a finished
run with the same key is loaded, and a folder holding another run is replaced (with a
warning). The merged result is saved in ``out`` (``ProbeResult.load(out)``).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from ...runs.executor import plan_chunks
from ...runs.spec import RunSpec
from ...runs.store import ResultStore
from ..result import INDEX_FILE, LAYER_FILE, TOKENS_FILE, Representations
from .result import ProbeResult
from .train import train_probes

__all__ = ["run_probes", "representations_fingerprint"]

log = logging.getLogger(__name__)

#: ``train_probes`` keywords that do not change what is computed (not part of the key).
_EXECUTION = {"device", "progress", "layers_per_batch"}


def representations_fingerprint(path: str | Path) -> str:
    """SHA-256 over the files of a saved ``Representations`` (names and contents).

    >>> import tempfile, torch
    >>> d = Representations.from_tensors({0: torch.zeros(2, 3)}).save(tempfile.mkdtemp())
    >>> len(representations_fingerprint(d))
    64
    """
    path = Path(path)
    reps = Representations.load(path)
    names = [INDEX_FILE, *(LAYER_FILE(x) for x in reps.layers)]
    if (path / TOKENS_FILE).is_file():
        names.append(TOKENS_FILE)
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode() + b"\0")
        with (path / name).open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def _spec(reps: Representations, fingerprint: str, params: dict[str, Any]) -> RunSpec:
    from idiomlens import __version__

    keyed = {k: v for k, v in params.items() if k not in _EXECUTION}
    return RunSpec(
        analysis="probe",
        params=keyed,
        model={
            "representations_sha256": fingerprint,
            "site": reps.site,
            "pool": reps.pool,
            "name": str(reps.meta.get("model", "representations")),
        },  # fmt: skip
        corpus_sha256=fingerprint,
        n_examples=reps.n_rows,
        library_version=__version__,
    )


def run_probes(
    reps_dir: str | Path,
    *,
    out: str | Path,
    layers_per_chunk: int | None = None,
    resume: bool = True,
    **params: Any,
) -> ProbeResult:
    """:func:`train_probes` on the representations saved in ``reps_dir``, stored in ``out``.

    Args:
        reps_dir: a folder written by ``Representations.save``.
        out: the run folder (``spec.json``, chunk folders, the merged result).
        layers_per_chunk: layers fitted and saved per chunk (the unit of resuming).
        resume: reuse finished chunks / a finished result of the same run; ``False``
            recomputes.
        **params: keywords of :func:`train_probes` (``labels``, ``split``, ``seed``, ``C``,
            ``cv``, ...; ``labels`` must be a field name or JSON data to enter the key).

    >>> import tempfile, torch
    >>> y = [i % 2 for i in range(40)]
    >>> d = Representations.from_tensors({0: torch.randn(40, 3)}, labels=y).save(tempfile.mkdtemp())
    >>> out = tempfile.mkdtemp()
    >>> a = run_probes(d, out=out, progress=False)
    >>> b = run_probes(d, out=out, progress=False)  # served from the store
    >>> bool((a.accuracy == b.accuracy).all())
    True
    """
    reps = Representations.load(reps_dir)
    spec = _spec(reps, representations_fingerprint(reps_dir), params)
    key = spec.key
    store = ResultStore(out)
    stored = store.read_spec_key()
    if resume and stored == key:
        final = store.load_final(key)
        if final is not None:
            log.info("probe: reusing the finished result in %s", store.root)
            return final  # type: ignore[return-value]
    if store.has_content() and (stored != key or not resume):
        if stored != key:
            log.warning("%s holds a different run; starting fresh", store.root)
        store.reset()
    store.remove_temporaries()
    if stored != key or not (store.root / "spec.json").exists():
        store.write_spec(
            spec, extra={"reps_dir": str(reps_dir), "layers_per_chunk": layers_per_chunk}
        )
    layers = list(params.pop("layers", None) or reps.layers)
    plan = plan_chunks(len(layers), layers_per_chunk or len(layers))
    records, _ = store.read_manifests(key)
    parts = []
    for index, start, end in plan:
        if resume and store.valid_chunk(records, index, start, end):
            parts.append(store.load_chunk(records, index))
            continue
        part = train_probes(reps, layers=layers[start:end], **params)
        store.write_chunk(key, index, start, end, part)
        parts.append(part)
    merged = ProbeResult.merge_layers(parts) if len(parts) > 1 else parts[0]
    merged.meta["run_key"] = key
    records, _ = store.read_manifests(key)
    store.write_final(key, merged, records)
    return merged
