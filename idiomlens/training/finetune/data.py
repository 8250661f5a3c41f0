"""Training data for fine-tuning: records in, tokenised ``input_ids`` / ``labels`` out.

Accepted ``data``:

- an ``IdiomCorpus`` (its texts), a list of strings, or a list of dicts;
- a text file (``.txt``: one text per non-empty line);
- a JSONL file (one JSON object per line);
- a CSV corpus file (``id, text, start, end``);
- a folder written by ``datasets.Dataset.save_to_disk``, or a ``datasets.Dataset``.

``objective="lm"`` needs a ``text`` field; ``"completion"`` needs ``prompt`` and
``completion`` (field names configurable). A record without them is an error naming the
file and line (or the record index). :func:`data_hash` is a SHA-256 of the records'
training fields in order, recorded with the run.

Tokenisation follows idiomlens's analyses: a BOS token is prepended when the tokenizer
has one and does not add it itself. For ``completion``, the labels of the BOS and prompt
tokens are ``-100`` (ignored by the loss), so only completion tokens are learned.

>>> records = read_records(["He spilled the beans.", "Break a leg!"], fields=("text",))
>>> [r["text"] for r in records]
['He spilled the beans.', 'Break a leg!']
>>> read_records([{"prompt": "Q"}], fields=("prompt", "completion"))
Traceback (most recent call last):
...
ValueError: data record 0 lacks field(s) ['completion'] (needed for this objective; it has ['prompt'])
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["read_records", "data_hash", "tokenize_records", "PadCollator", "IGNORE_INDEX"]

#: Label value the cross-entropy loss ignores (PyTorch's and Hugging Face's convention).
IGNORE_INDEX = -100


def _rows_from_path(path: Path) -> list[tuple[str, Any]]:
    """``(where, row)`` pairs from a file or a saved dataset folder."""
    if path.is_dir():
        if not ((path / "dataset_info.json").is_file() or (path / "state.json").is_file()):
            raise ValueError(
                f"{path} is a folder but not a saved datasets.Dataset (no dataset_info.json)"
            )
        from datasets import load_from_disk

        dataset = load_from_disk(str(path))
        if hasattr(dataset, "keys") and "train" in dataset:  # a DatasetDict
            dataset = dataset["train"]
        return [(f"{path}[{i}]", dict(row)) for i, row in enumerate(dataset)]
    suffix = path.suffix.lower()
    if suffix == ".txt":
        lines = path.read_text(encoding="utf-8").splitlines()
        return [(f"{path}:{n}", {"text": t}) for n, t in enumerate(lines, 1) if t.strip()]
    if suffix == ".jsonl":
        rows = []
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rows.append((f"{path}:{n}", json.loads(line)))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{n}: not valid JSON ({err.msg})") from None
        return rows
    if suffix == ".csv":
        from idiomlens.data import IdiomCorpus

        corpus = IdiomCorpus.from_csv(path)
        return [(f"{path}[{ex.id}]", {"text": ex.text}) for ex in corpus]
    raise ValueError(
        f"{path}: unknown data file type {suffix!r}; use .txt, .jsonl, .csv or a saved "
        "datasets.Dataset folder"
    )


def _rows(data: Any) -> list[tuple[str, Any]]:
    if isinstance(data, (str, Path)):
        path = Path(data).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"data not found: {path}")
        return _rows_from_path(path)
    if hasattr(data, "content_hash") and hasattr(data, "ids"):  # an IdiomCorpus
        return [(f"example {ex.id!r}", {"text": ex.text}) for ex in data]
    if hasattr(data, "column_names") and hasattr(data, "__getitem__"):  # datasets.Dataset
        return [(f"record {i}", dict(row)) for i, row in enumerate(data)]
    if isinstance(data, Sequence):
        return [
            (f"record {i}", {"text": row} if isinstance(row, str) else row)
            for i, row in enumerate(data)
        ]
    raise TypeError(
        f"data must be an IdiomCorpus, a path, a datasets.Dataset or a list, not {type(data).__name__}"
    )


def read_records(data: Any, *, fields: tuple[str, ...]) -> list[dict[str, str]]:
    """The training records of ``data`` with exactly ``fields`` (strings), in order.

    Raises ``ValueError`` naming the file and line (or record) that lacks a field or
    holds a non-string, and when there are no records at all.
    """
    records = []
    for where, row in _rows(data):
        if not isinstance(row, dict):
            raise ValueError(f"data {where}: expected a JSON object, got {type(row).__name__}")
        missing = [f for f in fields if f not in row or row[f] is None]
        if missing:
            raise ValueError(
                f"data {where} lacks field(s) {missing} (needed for this objective; "
                f"it has {sorted(row)})"
            )
        bad = [f for f in fields if not isinstance(row[f], str)]
        if bad:
            raise ValueError(f"data {where}: field(s) {bad} must be strings")
        records.append({f: row[f] for f in fields})
    if not records:
        raise ValueError(f"the data {data!r} holds no records")
    return records


def data_hash(records: list[dict[str, str]]) -> str:
    """SHA-256 of the records (their training fields, in order)."""
    h = hashlib.sha256()
    for record in records:
        h.update(json.dumps(record, sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _bos(tokenizer: Any) -> list[int]:
    return [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []


def tokenize_records(
    records: list[dict[str, str]],
    tokenizer: Any,
    *,
    objective: str,
    max_length: int,
    fields: tuple[str, ...],
) -> list[dict[str, list[int]]]:
    """``{input_ids, labels}`` per record; prompt (and BOS) labels are ``-100``.

    Examples longer than ``max_length`` tokens are truncated on the right. A completion
    record whose completion is cut off entirely raises ``ValueError`` naming its index.
    """
    out = []
    for i, record in enumerate(records):
        if objective == "lm":
            ids = _bos(tokenizer) + _encode(tokenizer, record[fields[0]])
            ids = ids[:max_length]
            labels = list(ids)
            if _bos(tokenizer):
                labels[0] = IGNORE_INDEX  # nothing predicts BOS
        else:
            prompt = _bos(tokenizer) + _encode(tokenizer, record[fields[0]])
            completion = _encode(tokenizer, record[fields[1]])
            ids = (prompt + completion)[:max_length]
            labels = ([IGNORE_INDEX] * len(prompt) + completion)[:max_length]
            if all(t == IGNORE_INDEX for t in labels):
                raise ValueError(
                    f"data record {i}: no completion token fits in max_length={max_length} "
                    f"(prompt has {len(prompt)} tokens)"
                )
        if len(ids) < 2:
            raise ValueError(f"data record {i}: fewer than 2 tokens, nothing to predict")
        out.append({"input_ids": ids, "labels": labels})
    return out


class PadCollator:
    """Pad ``input_ids`` / ``labels`` on the right: ``attention_mask`` 0 and label ``-100``
    at padding, so padding never enters the loss.

    >>> batch = PadCollator(pad_id=0)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
    ...                                 {"input_ids": [5, 8], "labels": [-100, 8]}])
    >>> batch["labels"].tolist()
    [[-100, 6, 7], [-100, 8, -100]]
    """

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        n = len(features)
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for row, f in enumerate(features):
            k = len(f["input_ids"])
            input_ids[row, :k] = torch.as_tensor(f["input_ids"])
            labels[row, :k] = torch.as_tensor(f["labels"])
            mask[row, :k] = 1
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
