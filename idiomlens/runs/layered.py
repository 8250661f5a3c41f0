"""Chunked, resumable, content-keyed runs whose result is a folder of many files.

:func:`~idiomlens.runs.run_analysis` merges its chunks in memory (``Result.concat``) and
saves the two-file layout of :class:`~idiomlens._io.Result`. A representation extraction
cannot do that: its result is one file per layer, larger than memory for a big corpus.
:func:`run_layered` is the same engine (the :class:`~idiomlens.runs.spec.RunSpec` key,
:func:`~idiomlens.runs.executor.plan_chunks`, the store's atomic chunk folders and
checksummed manifest) with two differences:

* a chunk is any object with ``.save(folder)`` and ``.ids``; every file it writes is
  checksummed (:class:`LayeredStore`), not a fixed pair of names;
* the final result is written by an ``assemble(chunk_folders, root)`` callback that
  streams the chunks' files into the final files (one layer at a time, constant
  memory) and returns their names, which the manifest records with checksums.

A finished run with the same key is served by ``load(root)``; a killed run resumes at
the first missing chunk; a run whose spec differs (weights, corpus, parameters) replaces
what the folder holds, with a warning. One process only (no ``torchrun`` / ``--shard``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .executor import plan_chunks
from .request import sha256_file
from .spec import RunSpec
from .store import MANIFEST, ChunkRecord, ResultStore, _read_json

__all__ = ["LayeredStore", "run_layered"]

log = logging.getLogger(__name__)

R = TypeVar("R")


def _folder_checksums(folder: Path, names: Any = None) -> dict[str, str]:
    names = sorted(p.name for p in folder.iterdir() if p.is_file()) if names is None else names
    return {name: sha256_file(folder / name) for name in names}


class LayeredStore(ResultStore):
    """A :class:`~idiomlens.runs.store.ResultStore` for results saved as many files."""

    def chunk_checksums(
        self, folder: Path, recorded: dict[str, str] | None = None
    ) -> dict[str, str]:
        """Every file of a chunk folder (only the ``recorded`` names when verifying)."""
        return _folder_checksums(folder, recorded or None)

    def write_final(self, key: str, files: list[str], records: dict[str, ChunkRecord]) -> None:  # type: ignore[override]
        """Record the assembled ``files`` (in the folder itself) and mark the run complete."""
        header = {"complete": True, "files": files, "sha256": _folder_checksums(self.root, files)}
        self._write_own(key, records, **header)

    def load_final(self, key: str, load: Callable[[Path], R] | None = None) -> R | None:  # type: ignore[override]
        """``load(root)`` of the finished run for ``key``, or ``None`` if absent or corrupted."""
        _, header = self.read_manifests(key)
        if not header.get("complete") or load is None:
            return None
        try:
            if _folder_checksums(self.root, header["files"]) != header.get("sha256"):
                log.warning("the assembled result in %s is corrupted; rebuilding it", self.root)
                return None
            return load(self.root)
        except (OSError, ValueError, KeyError) as err:
            log.warning("cannot read the result in %s (%s); rebuilding it", self.root, err)
            return None

    def reset(self) -> None:
        """Remove every run file, the assembled files named in the manifest included."""
        data = _read_json(self.root / MANIFEST) or {}
        for name in data.get("files", []):
            (self.root / name).unlink(missing_ok=True)
        super().reset()


def run_layered(
    spec: RunSpec,
    compute: Callable[[int, int], Any],
    assemble: Callable[[list[Path], Path], list[str]],
    load: Callable[[Path], R],
    *,
    out: str | Path,
    chunk_size: int = 256,
    resume: bool = True,
    progress: bool = True,
    info: dict[str, Any] | None = None,
) -> R:
    """Compute ``spec.n_examples`` examples in chunks into folder ``out``; return ``load(out)``.

    Args:
        spec: what is computed (its ``key`` decides reuse).
        compute: ``compute(start, end)`` -> the result of examples ``[start, end)``, an
            object with ``.ids`` and ``.save(folder)``.
        assemble: ``assemble(chunk_folders, out)`` writes the final files from the saved
            chunks (in corpus order) and returns their names.
        load: reads the assembled result from ``out``.
        out: the run folder (``spec.json``, ``manifest.json``, ``chunks/`` and the result).
        chunk_size: examples per saved chunk, the unit of resuming.
        resume: reuse finished chunks and a finished result of the same key.
        progress: a progress bar over examples.
        info: informational entries for ``spec.json`` (not keyed).
    """
    from tqdm.auto import tqdm

    store = LayeredStore(out)
    key = spec.key
    stored = store.read_spec_key()
    if resume and stored == key:
        final = store.load_final(key, load)
        if final is not None:
            log.info("%s: reusing the finished result in %s", spec.analysis, store.root)
            return final
    elif store.has_content():
        if stored != key:
            log.warning("%s holds a different run (weights, corpus or parameters changed); "
                        "starting fresh", store.root)  # fmt: skip
        store.reset()
    store.remove_temporaries()
    if stored != key or not (store.root / "spec.json").exists():
        store.write_spec(spec, extra={"chunk_size": chunk_size, **(info or {})})
    plan = plan_chunks(spec.n_examples, chunk_size)
    with tqdm(total=spec.n_examples, desc=spec.analysis, unit="ex", disable=not progress) as bar:
        for index, start, end in plan:
            records, _ = store.read_manifests(key)
            if not (resume and store.valid_chunk(records, index, start, end)):
                store.write_chunk(key, index, start, end, compute(start, end))
            bar.update(end - start)
    records, _ = store.read_manifests(key)
    bad = [i for i, s, e in plan if not store.valid_chunk(records, i, s, e)]
    if bad:
        raise RuntimeError(f"{store.root}: chunks {bad[:5]} are missing after computing them")
    files = assemble([store.chunk_path(i) for i, _, _ in plan], store.root)
    store.write_final(key, files, records)
    result = store.load_final(key, load)
    if result is None:
        raise RuntimeError(f"the assembled result in {store.root} cannot be read back")
    return result
