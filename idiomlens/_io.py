"""Atomic file writes and the generic save/load/concat of result dataclasses.

A result is a dataclass whose tensor fields go to ``tensors.safetensors`` and whose
other fields (ids, names, the run's parameters) go to ``result.json``. Tensor fields
listed in ``per_example`` carry the example axis first and are concatenated by
:meth:`Result.concat`, which is how chunked and sharded runs are merged.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors.torch import load_file, save_file

__all__ = ["atomic_write_bytes", "atomic_write_json", "Result"]

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
    with _atomic_target(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp)


class Result:
    """Mixin for result dataclasses: ``save``/``load`` and ``concat`` along examples.

    Subclasses are ``@dataclass``es with an ``ids`` field and set ``per_example`` to the
    names of tensor fields whose first axis is the example axis.
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

        Per-example tensors and ``ids`` are concatenated; every other field must agree.
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
            else:
                merged[f.name] = values[0]
        return cls(**merged)
