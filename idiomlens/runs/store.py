"""The on-disk result store of one run: chunks, manifests with checksums, the final result.

Layout of a store folder ``DIR``::

    DIR/spec.json                    the RunSpec and its key
    DIR/requests.json                CLI requests (input file hashes) answered by this run
    DIR/manifest.json                chunk records written by rank 0 / a single process
    DIR/manifest.<writer>.json       chunk records of other ranks or --shard jobs
    DIR/chunks/chunk-000012/         one saved Result per chunk
    DIR/tensors.safetensors, DIR/result.json   the merged result (``X.load(DIR)`` works)

Every file is written atomically (temp file + ``os.replace``); a chunk folder is written
under a temporary name and renamed into place, then recorded with the SHA-256 of each of
its files in the writer's manifest. A chunk counts as done only if its record matches the
planned example range and its files still hash to the recorded values, so a truncated,
corrupted or half-written chunk is recomputed. Each process only ever writes its own
manifest, so concurrent writers never race.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from idiomlens._io import JSON_FILE, TENSORS_FILE, Result, atomic_write_json

from .request import REQUESTS_FILE, sha256_file
from .spec import RunSpec

__all__ = ["ResultStore", "StoreMismatch", "ChunkRecord", "result_type_name", "import_result_type"]

log = logging.getLogger(__name__)

SPEC_FILE = "spec.json"
MANIFEST = "manifest.json"
RESULT_FILES = (TENSORS_FILE, JSON_FILE)

ChunkRecord = dict[str, Any]  # {"start", "end", "n_ids", "type", "written", "sha256": {file: hex}}


class StoreMismatch(RuntimeError):
    """The folder holds a different run (another key) and may not be overwritten."""


def result_type_name(cls: type) -> str:
    """``module:qualname`` of a result class, as stored in the manifest."""
    return f"{cls.__module__}:{cls.__qualname__}"


def import_result_type(name: str) -> type[Result]:
    """Inverse of :func:`result_type_name`."""
    module, _, qualname = name.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _checksums(folder: Path) -> dict[str, str]:
    return {name: sha256_file(folder / name) for name in RESULT_FILES}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class ResultStore:
    """One run's folder. ``writer`` names this process's manifest (``None``: the main one).

    >>> import tempfile
    >>> store = ResultStore(tempfile.mkdtemp())
    >>> store.read_spec_key() is None
    True
    """

    def __init__(self, root: str | Path, *, writer: str | None = None) -> None:
        self.root = Path(root)
        self.writer = writer
        self.chunks_dir = self.root / "chunks"
        self._records: dict[str, ChunkRecord] | None = None

    # ---- spec ------------------------------------------------------------------------

    def read_spec_key(self) -> str | None:
        """The key of the run stored here, or ``None`` for an empty/unreadable folder."""
        data = _read_json(self.root / SPEC_FILE)
        return None if data is None else data.get("key")

    def has_content(self) -> bool:
        """Whether the folder holds any run files."""
        names = (SPEC_FILE, MANIFEST, "chunks", *RESULT_FILES)
        return any((self.root / n).exists() for n in names) or any(self._manifest_paths())

    def reset(self) -> None:
        """Remove every run file (other files in the folder are left alone)."""
        shutil.rmtree(self.chunks_dir, ignore_errors=True)
        for path in [self.root / SPEC_FILE, self.root / REQUESTS_FILE, *self._manifest_paths()]:
            path.unlink(missing_ok=True)
        for name in RESULT_FILES:
            (self.root / name).unlink(missing_ok=True)
        self._records = None

    def remove_temporaries(self) -> int:
        """Delete temp files/folders a killed writer left behind; returns how many.

        Only call this when no other process writes to the store (before a run starts).
        """
        stale = list(self.chunks_dir.glob(".tmp-chunk-*")) if self.chunks_dir.is_dir() else []
        stale += list(self.root.glob(".*.tmp")) if self.root.is_dir() else []
        for path in stale:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return len(stale)

    def write_spec(self, spec: RunSpec, *, extra: dict[str, Any] | None = None) -> None:
        """Write ``spec.json`` (the spec, its key, and informational ``extra``)."""
        self.root.mkdir(parents=True, exist_ok=True)
        payload = {"key": spec.key, "spec": spec.to_dict(), "run": extra or {}}
        atomic_write_json(self.root / SPEC_FILE, payload)

    # ---- manifests -------------------------------------------------------------------

    def _manifest_paths(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        extra = sorted(self.root.glob("manifest.*.json"))
        main = self.root / MANIFEST
        return ([main] if main.exists() else []) + extra

    def _own_manifest(self) -> Path:
        return self.root / (MANIFEST if self.writer is None else f"manifest.{self.writer}.json")

    def read_manifests(self, key: str) -> tuple[dict[str, ChunkRecord], dict[str, Any]]:
        """Chunk records of all writers whose manifest has ``key``, and the main header."""
        records: dict[str, ChunkRecord] = {}
        header: dict[str, Any] = {}
        for path in self._manifest_paths():
            data = _read_json(path)
            if data is None or data.get("key") != key:
                continue
            if path.name == MANIFEST:
                header = {k: v for k, v in data.items() if k != "chunks"}
            for name, rec in data.get("chunks", {}).items():  # the newest record wins
                if name not in records or rec.get("written", 0) >= records[name].get("written", 0):
                    records[name] = rec
        return records, header

    def _write_own(self, key: str, records: dict[str, ChunkRecord], **header: Any) -> None:
        payload = {"key": key, **header, "chunks": dict(sorted(records.items()))}
        atomic_write_json(self._own_manifest(), payload)

    # ---- chunks ----------------------------------------------------------------------

    @staticmethod
    def chunk_name(index: int) -> str:
        return f"chunk-{index:06d}"

    def chunk_path(self, index: int) -> Path:
        return self.chunks_dir / self.chunk_name(index)

    def valid_chunk(
        self, records: dict[str, ChunkRecord], index: int, start: int, end: int
    ) -> bool:
        """Whether chunk ``index`` is recorded for ``[start, end)`` and its files check out."""
        rec = records.get(self.chunk_name(index))
        if rec is None or (rec.get("start"), rec.get("end")) != (start, end):
            return False
        folder = self.chunk_path(index)
        try:
            ok = self.chunk_checksums(folder, rec.get("sha256")) == rec.get("sha256")
        except OSError:
            ok = False
        if not ok:
            log.warning(
                "chunk %s in %s is corrupted or incomplete; recomputing it", index, self.root
            )
        return ok

    def chunk_checksums(
        self, folder: Path, recorded: dict[str, str] | None = None
    ) -> dict[str, str]:
        """SHA-256 of a chunk folder's files (``recorded``: the chunk record's, when a
        saved chunk is verified). Here the two files of a saved ``Result``."""
        return _checksums(folder)

    def write_chunk(self, key: str, index: int, start: int, end: int, result: Any) -> None:
        """Save ``result`` as chunk ``index`` atomically and record it in this writer's manifest.

        ``result``: a ``Result``, or any object with ``.ids`` and ``.save(folder)`` whose
        files :meth:`chunk_checksums` covers (a layered run's chunk)."""
        self.chunks_dir.mkdir(parents=True, exist_ok=True)
        tmp = (
            self.chunks_dir / f".tmp-{self.chunk_name(index)}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        )
        try:
            result.save(tmp)
            record = {
                "start": start,
                "end": end,
                "n_ids": len(result.ids),
                "type": result_type_name(type(result)),
                "written": time.time(),
                "sha256": self.chunk_checksums(tmp),
            }
            final = self.chunk_path(index)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        own, _ = self._own_records(key)
        own[self.chunk_name(index)] = record
        self._write_own(key, own)

    def _own_records(self, key: str) -> tuple[dict[str, ChunkRecord], dict[str, Any]]:
        data = _read_json(self._own_manifest())
        if data is None or data.get("key") != key:
            return {}, {}
        return dict(data.get("chunks", {})), {k: v for k, v in data.items() if k != "chunks"}

    def load_chunk(self, records: dict[str, ChunkRecord], index: int) -> Result:
        """Read chunk ``index`` with the result class named in its record."""
        cls = import_result_type(records[self.chunk_name(index)]["type"])
        return cls.load(self.chunk_path(index))

    # ---- the final result ------------------------------------------------------------

    def write_final(self, key: str, result: Result, records: dict[str, ChunkRecord]) -> None:
        """Save the merged result in the folder itself and mark the run complete.

        The main manifest absorbs the records of all writers, whose manifests are removed.
        """
        result.save(self.root)
        header = {
            "complete": True,
            "result_type": result_type_name(type(result)),
            "n_ids": len(result.ids),
            "sha256": _checksums(self.root),
        }
        atomic_write_json(
            self.root / MANIFEST, {"key": key, **header, "chunks": dict(sorted(records.items()))}
        )
        for path in self._manifest_paths():
            if path.name != MANIFEST:
                path.unlink(missing_ok=True)

    def load_final(self, key: str) -> Result | None:
        """The finished result for ``key``, or ``None`` if absent, incomplete or corrupted."""
        _, header = self.read_manifests(key)
        if not header.get("complete"):
            return None
        try:
            if _checksums(self.root) != header.get("sha256"):
                log.warning("the merged result in %s is corrupted; rebuilding it", self.root)
                return None
            cls = import_result_type(header["result_type"])
            return cls.load(self.root)
        except (OSError, ValueError, KeyError, ImportError, AttributeError) as err:
            log.warning("cannot read the merged result in %s (%s); rebuilding it", self.root, err)
            return None
