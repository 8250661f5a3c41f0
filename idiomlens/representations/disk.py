"""Writing extracted representations to disk: chunk folders and their streamed assembly.

A chunk of an extraction is an ordinary saved :class:`~.result.Representations` folder
(one safetensors file per layer). :func:`assemble_chunks` joins the chunk folders of a
run into the final folder without ever holding more than one chunk's layer in memory:
each layer file is written as a safetensors header (whose shape is known from the chunk
headers) followed by the chunks' raw bytes, in corpus order (:func:`write_rows`).
With ``average_duplicates`` the token rows are averaged per token id on the way
(:func:`average_chunks`).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from .average import duplicate_groups, group_labels, group_means
from .result import INDEX_FILE, LAYER_FILE, TOKENS_FILE, Representations

__all__ = ["write_rows", "assemble_chunks", "average_chunks", "SAFETENSORS_DTYPES"]

SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def _temp_beside(path: Path) -> str:
    """A temp file name in ``path``'s folder (the store removes leftovers on resume)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return tmp


def write_rows(
    path: str | Path, parts: Iterable[Tensor], *, n_rows: int, d: int, dtype: torch.dtype
) -> Path:
    """Write ``[n_rows, d]`` matrices arriving in pieces as one safetensors file
    (tensor ``"vectors"``), atomically; memory holds one piece at a time.

    >>> import tempfile, pathlib, torch
    >>> from safetensors.torch import load_file
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.safetensors"
    >>> _ = write_rows(p, [torch.ones(2, 3), torch.zeros(1, 3)], n_rows=3, d=3, dtype=torch.float32)
    >>> load_file(p)["vectors"].sum().item()
    6.0
    """
    path = Path(path)
    itemsize = torch.empty((), dtype=dtype).element_size()
    nbytes = n_rows * d * itemsize
    header = {"vectors": {"dtype": SAFETENSORS_DTYPES[dtype], "shape": [n_rows, d],
                          "data_offsets": [0, nbytes]}}  # fmt: skip
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = _temp_beside(path)
    written = 0
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(raw)) + raw)
            for part in parts:
                if part.dtype != dtype or part.dim() != 2 or part.shape[1] != d:
                    raise ValueError(f"{path}: a piece is {tuple(part.shape)} {part.dtype}, "
                                     f"expected [*, {d}] {dtype}")  # fmt: skip
                f.write(part.contiguous().view(torch.uint8).numpy().tobytes())
                written += part.shape[0]
            f.flush()
            os.fsync(f.fileno())
        if written != n_rows:
            raise ValueError(f"{path}: {written} rows written, {n_rows} expected")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _layer_rows(folders: Sequence[Path], layer: int) -> Iterator[Tensor]:
    for folder in folders:
        with safe_open(folder / LAYER_FILE(layer), framework="pt") as f:
            yield f.get_tensor("vectors")


def _shape(folder: Path, layer: int) -> tuple[tuple[int, int], torch.dtype]:
    with safe_open(folder / LAYER_FILE(layer), framework="pt") as f:
        sl = f.get_slice("vectors")
        dtype = {v: k for k, v in SAFETENSORS_DTYPES.items()}[sl.get_dtype()]
        return tuple(sl.get_shape()), dtype  # type: ignore[return-value]


def assemble_chunks(
    folders: Sequence[Path], root: Path, *, average_duplicates: bool = False
) -> list[str]:
    """Join saved chunk folders (corpus order) into ``root``; returns the files written."""
    parts = [Representations.load(f) for f in folders]
    first = parts[0]
    ids = tuple(i for p in parts for i in p.ids)
    labels = {k: tuple(v for p in parts for v in p.labels[k]) for k in first.labels}
    tokens: dict[str, Tensor] = {}
    if first.example_index is not None:
        starts = torch.tensor([0, *[len(p.ids) for p in parts]]).cumsum(0)
        tokens = {
            "token_ids": torch.cat([p.token_ids for p in parts]),
            "example_index": torch.cat(
                [p.example_index + s for p, s in zip(parts, starts.tolist(), strict=False)]
            ),
            "positions": torch.cat([p.positions for p in parts]),
        }
    if average_duplicates:
        return average_chunks(folders, root, first, ids, labels, tokens)
    files = []
    for layer in first.layers:
        shapes = [_shape(f, layer) for f in folders]
        n_rows, (d, dtype) = sum(s[0][0] for s in shapes), (shapes[0][0][1], shapes[0][1])
        write_rows(
            root / LAYER_FILE(layer), _layer_rows(folders, layer), n_rows=n_rows, d=d, dtype=dtype
        )
        files.append(LAYER_FILE(layer))
    return files + write_index(root, first, ids, labels, tokens)


def write_index(
    root: Path, like: Representations, ids: Sequence[str], labels: dict, tokens: dict[str, Tensor]
) -> list[str]:
    """Write ``tokens.safetensors`` (token pools) and ``representations.json``."""
    from .._io import atomic_write_json

    files = []
    if tokens:
        tmp = _temp_beside(root / TOKENS_FILE)
        save_file({k: v.contiguous() for k, v in tokens.items()}, tmp)
        os.replace(tmp, root / TOKENS_FILE)
        files.append(TOKENS_FILE)
    atomic_write_json(root / INDEX_FILE, like.index_dict(ids=ids, labels=labels))
    return [*files, INDEX_FILE]


def average_chunks(
    folders: Sequence[Path],
    root: Path,
    like: Representations,
    ids: Sequence[str],
    labels: dict[str, Sequence[Any]],
    tokens: dict[str, Tensor],
) -> list[str]:
    """Streamed: average the token rows of saved chunk folders into ``root``'s layer files."""
    group, first = duplicate_groups(tokens["token_ids"])
    n = len(first)
    files = []
    for layer in like.layers:
        (_, d), dtype = _shape(folders[0], layer)
        means = group_means(_layer_rows(folders, layer), group, n, d, dtype)
        write_rows(root / LAYER_FILE(layer), [means], n_rows=n, d=d, dtype=dtype)
        files.append(LAYER_FILE(layer))
    merged = {k: v[first] for k, v in tokens.items()}
    return files + write_index(root, like, ids, group_labels(labels, group, n), merged)
