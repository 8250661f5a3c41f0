"""Answer a finished CLI run from its store without importing torch or building the model.

A run's key (:class:`~idiomlens.runs.spec.RunSpec`) hashes the *loaded* model's weights
and tokenizer and the *parsed* corpus, so computing it needs TransformerLens, the model
and the corpus reader. A :func:`request_key` instead hashes the command's *inputs as
files*: the model folder's files (config, weights, tokenizer), the corpus file(s), the
analysis, its parameters, the ``--dtype``, the idiomlens version and the versions of
the packages that turn those files into a model (torch, transformer-lens,
transformers, safetensors, tokenizers, peft). The store folder keeps
``requests.json``, a map from request keys to the run key they produced; a request
that maps to the folder's complete, checksum-valid run is answered from it at once
(:func:`lookup`), and any other request takes the full path, which still finds the
result by its run key when only the files' spelling changed (:func:`remember` then
records the new request). The request map is an index, never the authority: a false
miss costs one model load; a hit requires every input file to be byte-identical.

Hashing a 3 GB checkpoint takes seconds, so file hashes are cached on disk keyed by
``(path, size, mtime_ns, ctime_ns, inode)``: ``$IDIOMLENS_CACHE_DIR/file-sha256.json``
(default ``$XDG_CACHE_HOME/idiomlens``, else ``~/.cache/idiomlens``). A file rewritten
in place gets a new ``ctime`` and is re-hashed.

What has no fast path (the full path runs, as before): TransformerLens model names
(``"pythia-1.4b"``: their weights live on the Hub and cannot be hashed offline without
loading them), adapters whose base is not a local folder, ``--no-resume``, ``--shard``
jobs and ``torchrun`` launches.

This module imports only the standard library.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "FileHashCache",
    "model_source_files",
    "corpus_files",
    "request_key",
    "lookup",
    "remember",
    "REQUESTS_FILE",
    "CACHE_ENV",
]

log = logging.getLogger(__name__)

REQUESTS_FILE = "requests.json"
CACHE_ENV = "IDIOMLENS_CACHE_DIR"
DEMO_MODEL_NAME = "idiomlens-demo"  # idiomlens.models.load.DEMO_MODEL_NAME
DEMO_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "demo_model"
#: Packages whose version changes how files become a model (read from metadata only).
PACKAGES = ("torch", "transformer-lens", "transformers", "safetensors", "tokenizers", "peft")
#: Files in a model folder that no loader reads (trainer state), never hashed.
_IGNORED = ("optimizer.pt", "optimizer.bin", "scheduler.pt", "trainer_state.json")
_IGNORED_PREFIXES = (".", "rng_state", "training_args")
_MAX_CACHE_ENTRIES = 4096


def _cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "idiomlens"


def _atomic_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp files are owner-only; results are shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, streamed."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class FileHashCache:
    """SHA-256 of files, remembered on disk by ``(path, size, mtime_ns, ctime_ns, inode)``.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "w.bin").write_bytes(b"abc")
    3
    >>> cache = FileHashCache(root / "hashes.json")
    >>> cache.sha256(root / "w.bin")[:12], cache.hashed
    ('ba7816bf8f01', 1)
    >>> FileHashCache(cache.save()).sha256(root / "w.bin")[:12]  # a new process: no re-hash
    'ba7816bf8f01'
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else _cache_dir() / "file-sha256.json"
        self._entries: dict[str, Any] | None = None
        self._dirty = False
        self.hashed = 0  # files actually read by this object

    def _load(self) -> dict[str, Any]:
        if self._entries is None:
            self._entries = _read_json(self.path)
        return self._entries

    def sha256(self, path: str | Path) -> str:
        """The file's SHA-256, from the cache when its stat is unchanged."""
        path = Path(path).resolve()
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        entries = self._load()
        hit = entries.get(str(path))
        if isinstance(hit, dict) and hit.get("stat") == stamp:
            return str(hit["sha256"])
        digest = sha256_file(path)
        self.hashed += 1
        entries[str(path)] = {"stat": stamp, "sha256": digest}
        self._dirty = True
        return digest

    def save(self) -> Path:
        """Write new entries (best effort: an unwritable cache folder is only logged)."""
        if self._dirty and self._entries is not None:
            entries = self._entries
            if len(entries) > _MAX_CACHE_ENTRIES:  # keep the newest entries (insertion order)
                entries = dict(list(entries.items())[-_MAX_CACHE_ENTRIES:])
            try:
                _atomic_json(self.path, entries)
                self._dirty = False
            except OSError as err:
                log.debug("cannot write the file hash cache %s: %s", self.path, err)
        return self.path


def _model_dir_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.name not in _IGNORED and not p.name.startswith(_IGNORED_PREFIXES)
    )


def model_source_files(source: str | os.PathLike) -> tuple[str, list[Path]] | None:
    """``(kind, files)`` that fully determine the model ``load_model(source)`` builds, or
    ``None`` when the source cannot be identified by local files (a TransformerLens name,
    an adapter with a remote base, a missing path).

    Kinds follow ``load_model``'s dispatch: ``demo``, ``hooked_dir``, ``peft_adapter``
    (its files and its local base's), ``hf_checkpoint``.
    """
    if str(source) == DEMO_MODEL_NAME:
        return "demo", _model_dir_files(DEMO_MODEL_DIR)
    path = Path(source).expanduser()
    if not path.is_dir():
        return None
    files = _model_dir_files(path)
    if (path / "hooked_config.json").is_file():
        return "hooked_dir", files
    if (path / "adapter_config.json").is_file():
        base = _read_json(path / "adapter_config.json").get("base_model_name_or_path")
        base_dir = Path(str(base)).expanduser() if base else None
        if base_dir is None or not (base_dir / "config.json").is_file():
            return None
        return "peft_adapter", files + _model_dir_files(base_dir)
    if (path / "config.json").is_file():
        return "hf_checkpoint", files
    return None


def corpus_files(path: str | os.PathLike) -> list[Path]:
    """The file, or every file under the folder (an EPIE root), sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    raise FileNotFoundError(path)


def _files_digest(
    files: Iterable[Path], cache: FileHashCache, root: Path | None = None
) -> list[list[str]]:
    """``[name, sha256]`` per file; names relative to ``root`` (default: the file name)."""
    return [[p.relative_to(root).as_posix() if root else p.name, cache.sha256(p)] for p in files]


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def request_key(
    *,
    analysis: str,
    params: Mapping[str, Any],
    model_source: str | os.PathLike,
    corpus: str | os.PathLike,
    split: str | None = None,
    dtype: str | None = None,
    cache: FileHashCache | None = None,
) -> str | None:
    """SHA-256 naming a CLI run by its input files, or ``None`` when the model source
    has no local files (see the module docstring).

    ``params`` must be JSON data (what the CLI parses).
    """
    found = model_source_files(model_source)
    if found is None:
        return None
    cache = cache or FileHashCache()
    try:
        kind, files = found
        payload = {
            "analysis": analysis,
            "params": params,
            "model": {"kind": kind, "files": _files_digest(files, cache), "dtype": dtype},
            "corpus": {
                "files": _files_digest(corpus_files(corpus), cache, _root(corpus)),
                "split": split,
            },
            "versions": {"idiomlens": _library_version(), **_versions()},
        }
    except OSError:
        return None
    finally:
        cache.save()
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _root(path: str | os.PathLike) -> Path | None:
    return Path(path) if Path(path).is_dir() else None


def _library_version() -> str:
    from idiomlens import __version__

    return __version__


def lookup(out: str | os.PathLike, request: str | None) -> dict[str, Any] | None:
    """``{"key", "result_type", "n_ids"}`` of the finished run in ``out`` that
    ``request`` produced, or ``None``: not recorded, another run, incomplete, or a
    merged-result file whose checksum no longer matches."""
    if request is None:
        return None
    root = Path(out)
    key = _read_json(root / REQUESTS_FILE).get(request)
    if not key or _read_json(root / "spec.json").get("key") != key:
        return None
    manifest = _read_json(root / "manifest.json")
    if manifest.get("key") != key or not manifest.get("complete"):
        return None
    sums = manifest.get("sha256") or {}
    try:
        if not sums or any(sha256_file(root / name) != digest for name, digest in sums.items()):
            return None
    except OSError:
        return None
    return {"key": key, "result_type": manifest.get("result_type"), "n_ids": manifest.get("n_ids")}


def remember(out: str | os.PathLike, request: str | None) -> None:
    """Record that ``request`` produced the complete run now stored in ``out``."""
    if request is None:
        return
    root = Path(out)
    key = _read_json(root / "spec.json").get("key")
    manifest = _read_json(root / "manifest.json")
    if not key or manifest.get("key") != key or not manifest.get("complete"):
        return
    known = {r: k for r, k in _read_json(root / REQUESTS_FILE).items() if k == key}
    known[request] = key
    try:
        _atomic_json(root / REQUESTS_FILE, known)
    except OSError as err:
        log.debug("cannot record the request in %s: %s", root, err)
