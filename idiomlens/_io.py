"""Atomic file writes and the generic save/load/concat of result dataclasses.

A result is a dataclass whose tensor fields go to ``tensors.safetensors`` and whose
other fields (ids, names, the run's parameters) go to ``result.json``. Tensor fields
listed in ``per_example`` carry the example axis first and are concatenated by
:meth:`Result.concat`, which is how chunked and sharded runs are merged. The interface
every result shares (``ids``, ``meta``, ``to_dataframe``, ``plot``, ``top``) is described
on :class:`Result`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors.torch import load_file, save_file

__all__ = ["atomic_write_bytes", "atomic_write_json", "Result", "merge_meta", "EXECUTION_META"]

R = TypeVar("R", bound="Result")

TENSORS_FILE = "tensors.safetensors"
JSON_FILE = "result.json"


@contextmanager
def _atomic_target(path: Path) -> Iterator[str]:
    """Yield a temp file name beside ``path``; on success it replaces ``path``.

    The temp file gets the permissions a plain ``open`` would give (``mkstemp`` makes it
    owner-only), so results and reports can be shared.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    path = Path(path)
    with _atomic_target(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return path


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON."""
    return atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode())


def _atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Save ``tensors``; fields that share memory (views of one buffer) are copied first,
    since safetensors refuses shared storage."""
    out, seen = {}, set()
    for k, v in tensors.items():
        v = v.detach().contiguous().cpu()
        ptr = v.untyped_storage().data_ptr() if v.numel() else None
        if ptr is not None and ptr in seen:
            v = v.clone()
        seen.add(ptr)
        out[k] = v
    with _atomic_target(path) as tmp:
        save_file(out, tmp)


class Result:
    """Mixin for result dataclasses: the interface every idiomlens result shares.

    Every result is a ``@dataclass`` with

    - ``ids``: the examples (or pairs) it covers, in order;
    - ``meta``: provenance (model identity and processing, dtype, corpus hash,
      parameters, library version; built by :func:`idiomlens.engine.run_meta`);
    - ``to_dataframe()``: a long-format ``pandas.DataFrame``; ``plot()``: a plotly figure;
    - ``save(dir)`` / ``Cls.load(dir)``: tensor fields in ``tensors.safetensors``, the
      others in ``result.json``;
    - ``top(k)`` where ranking makes sense: a :class:`~idiomlens._heads.Ranking` of records
      with ``.label``, ``.layer``, ``.head``, ``.value`` (per-head results give
      ``HeadRank(layer, head, value)``, component results ``ComponentRank(label, value)``;
      both unpack like the tuples earlier versions returned).

    Subclasses set ``per_example`` to the names of tensor fields whose first axis is the
    example axis; :meth:`concat` joins those along examples (chunked and sharded runs).
    """

    per_example: ClassVar[tuple[str, ...]] = ()

    def _split_fields(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, other = {}, {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                tensors[f.name] = value
            else:
                other[f.name] = value
        return tensors, other

    def to_dataframe(self) -> Any:
        """A long-format DataFrame of the result (every result type defines it)."""
        raise NotImplementedError(f"{type(self).__name__} has no to_dataframe()")

    def plot(self, **kwargs: Any) -> Any:
        """A plotly figure of the result (every result type defines it)."""
        raise NotImplementedError(f"{type(self).__name__} has no plot()")

    def save(self, path: str | Path) -> Path:
        """Write the result to folder ``path`` (created); returns the folder."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors, other = self._split_fields()
        _atomic_save_tensors(path / TENSORS_FILE, tensors)
        atomic_write_json(path / JSON_FILE, {"type": type(self).__name__, "fields": other})
        return path

    @classmethod
    def load(cls: type[R], path: str | Path) -> R:
        """Read a result written by :meth:`save`."""
        path = Path(path)
        if not (path / JSON_FILE).is_file() or not (path / TENSORS_FILE).is_file():
            raise FileNotFoundError(f"no saved {cls.__name__} in {path}")
        header = json.loads((path / JSON_FILE).read_text())
        if header.get("type") != cls.__name__:
            raise ValueError(f"{path} holds a {header.get('type')}, not a {cls.__name__}")
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in header["fields"].items()}
        fields.update(load_file(path / TENSORS_FILE))
        return cls(**fields)

    @classmethod
    def concat(cls: type[R], parts: list[R]) -> R:
        """Join results over disjoint examples (in the given order).

        ``ids`` and the ``per_example`` tensors are concatenated. Every other field must
        agree across parts (tensors exactly); otherwise ``ValueError`` names the field.
        ``meta`` is merged by :func:`merge_meta`: ``n_examples`` is summed,
        ``corpus_hash`` becomes the hash of the parts' hashes (in order), entries that may
        differ between chunks (:data:`EXECUTION_META`: execution settings, names and
        paths, at any depth) keep their value when equal and become the list of distinct
        values otherwise, nested dicts are merged key by key, and any other differing
        entry raises, naming it (``meta['kind']``).
        """
        if not parts:
            raise ValueError(f"cannot concatenate zero {cls.__name__} results")
        first = parts[0]
        merged: dict[str, Any] = {}
        for f in dataclasses.fields(first):  # type: ignore[arg-type]
            values = [getattr(p, f.name) for p in parts]
            if f.name == "ids":
                merged[f.name] = tuple(i for v in values for i in v)
            elif f.name in cls.per_example:
                merged[f.name] = torch.cat(values, dim=0)
            elif f.name == "meta":
                merged[f.name] = merge_meta(values, what=cls.__name__)
            else:
                _check_agree(cls.__name__, f"field {f.name!r}", values)
                merged[f.name] = values[0]
        return cls(**merged)


#: ``meta`` entries (at any depth) that may differ between merged parts: execution
#: settings, and names / paths (a resumed run may load the same weights from another
#: folder; the run key, not ``meta``, guarantees they are the same weights).
EXECUTION_META = ("batch_tokens", "batch_size", "device", "source", "model_name")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and _equal_tensors(a.cpu(), b.cpu())
        )
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True  # NaN == NaN for this purpose
    return bool(a == b)


def _equal_tensors(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise-equal values, NaN equal to NaN at the same places."""
    if a.is_floating_point() or a.is_complex():
        return bool(torch.allclose(a, b, rtol=0.0, atol=0.0, equal_nan=True))
    return bool(torch.equal(a, b))


def _shown(x: Any) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else repr(x)[:80]


def _check_agree(cls_name: str, what: str, values: list[Any]) -> None:
    for i, v in enumerate(values[1:], start=1):
        if not _same(values[0], v):
            raise ValueError(
                f"cannot concatenate {cls_name} results: {what} differs between "
                f"part 0 ({_shown(values[0])}) and part {i} ({_shown(v)})"
            )


def merge_meta(metas: list[dict[str, Any]], *, what: str = "these") -> dict[str, Any]:
    """The ``meta`` of results joined over disjoint examples (see :meth:`Result.concat`).

    >>> m = merge_meta([{"n_examples": 2, "corpus_hash": "a", "kind": "idiom"},
    ...                 {"n_examples": 3, "corpus_hash": "b", "kind": "idiom"}])
    >>> m["n_examples"], m["kind"], len(m["corpus_hash"])
    (5, 'idiom', 64)
    >>> merge_meta([{"kind": "idiom"}, {"kind": "literal"}])
    Traceback (most recent call last):
    ...
    ValueError: cannot concatenate these results: meta['kind'] differs between part 0 ('idiom') and part 1 ('literal')
    """
    if len(metas) == 1:
        return dict(metas[0])
    return _merge_dicts(metas, what, "meta", top=True)


def _merge_dicts(metas: list[dict[str, Any]], what: str, where: str, top: bool) -> dict[str, Any]:
    keys = list(dict.fromkeys(k for m in metas for k in m))
    out: dict[str, Any] = {}
    for key in keys:
        values = [m.get(key) for m in metas]
        if top and key == "n_examples":
            out[key] = sum(int(v or 0) for v in values)
        elif top and key == "corpus_hash":
            joined = "\n".join(str(v or "") for v in values)
            out[key] = hashlib.sha256(joined.encode()).hexdigest()
        elif key in EXECUTION_META:
            distinct = [v for i, v in enumerate(values) if v not in values[:i]]
            out[key] = distinct[0] if len(distinct) == 1 else distinct
        elif all(isinstance(v, dict) for v in values):
            out[key] = _merge_dicts(values, what, f"{where}[{key!r}]", top=False)
        else:
            _check_agree(what, f"{where}[{key!r}]", values)
            out[key] = values[0]
    return out
