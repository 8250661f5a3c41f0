"""Plain labelled texts: corpora without a marked idiom (for representations and probes).

A :class:`TextExample` is a text, a stable id and any number of labels (``language``,
``subject``, ``answer``, ...). A :class:`TextCorpus` is an ordered sequence of them with
unique ids, read from JSONL, CSV or a ``datasets.Dataset`` saved with
``save_to_disk`` (:func:`load_texts`). Why a record of its own rather than an
:class:`~idiomlens.IdiomExample` with a whole-text span: an idiom example's ``label`` must
be ``figurative``/``literal`` and its span means something; a text has neither, and the
pools that need a span (``idiom``, ``idiom_last``, ``literal``) refuse a text corpus
with a clear error instead of silently pooling the whole text.

Internally a text is aligned as an idiom example whose span is the whole text
(:meth:`TextExample.as_idiom_example`), so every engine batch and mask works unchanged.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from .example import IdiomExample

__all__ = ["TextExample", "TextCorpus", "load_texts"]

_SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class TextExample:
    """One labelled text.

    Args:
        id: stable identifier, unique within a corpus.
        text: the text (non-empty).
        labels: ``{name: value}``, scalar values (str, int, float, bool).

    >>> TextExample("q1", "Answer:", {"subject": "anatomy", "answer": "B"}).labels["answer"]
    'B'
    """

    id: str
    text: str
    labels: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"text id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError(f"text {self.id!r}: the text is empty")
        for name, value in self.labels.items():
            if value is not None and not isinstance(value, _SCALARS):
                raise ValueError(
                    f"text {self.id!r}: label {name!r} must be a scalar, got {type(value).__name__}"
                )

    def as_idiom_example(self) -> IdiomExample:
        """The example the engine aligns: span = the whole text, labels in ``meta``."""
        return IdiomExample(self.id, self.text, (0, len(self.text)), meta=dict(self.labels))


class TextCorpus(Sequence[TextExample]):
    """An immutable, ordered sequence of :class:`TextExample` with unique ids.

    >>> c = TextCorpus([TextExample("a", "Hallo Welt", {"language": "de"})], name="demo")
    >>> len(c), c["a"].labels, c[0:1].ids
    (1, {'language': 'de'}, ('a',))
    """

    def __init__(self, examples: Iterable[TextExample], *, name: str = "texts") -> None:
        self._examples = tuple(examples)
        self.name = name
        self._index: dict[str, int] = {}
        for i, ex in enumerate(self._examples):
            if not isinstance(ex, TextExample):
                raise TypeError(f"corpus item {i} is a {type(ex).__name__}, not a TextExample")
            if ex.id in self._index:
                raise ValueError(f"duplicate text id {ex.id!r} in {name}")
            self._index[ex.id] = i

    @overload
    def __getitem__(self, key: int | str) -> TextExample: ...
    @overload
    def __getitem__(self, key: slice) -> TextCorpus: ...
    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        if isinstance(key, str):
            try:
                return self._examples[self._index[key]]
            except KeyError:
                raise KeyError(f"no text with id {key!r} in {self.name}") from None
        if isinstance(key, slice):
            return TextCorpus(self._examples[key], name=self.name)
        return self._examples[key]

    def __len__(self) -> int:
        return len(self._examples)

    def __iter__(self) -> Iterator[TextExample]:
        return iter(self._examples)

    def __repr__(self) -> str:
        return f"TextCorpus(name={self.name!r}, n={len(self)})"

    @property
    def ids(self) -> tuple[str, ...]:
        """Text ids in corpus order."""
        return tuple(ex.id for ex in self._examples)

    def content_hash(self) -> str:
        """SHA-256 over ids, texts and labels (order-sensitive), for caching."""
        h = hashlib.sha256(b"TextCorpus\n")
        for ex in self._examples:
            h.update(json.dumps([ex.id, ex.text, ex.labels], sort_keys=True).encode() + b"\n")
        return h.hexdigest()

    def to_jsonl(self, path: str | Path) -> Path:
        """Write ``{id, text, **labels}`` per line (what :func:`load_texts` reads back)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            for ex in self:
                f.write(json.dumps({"id": ex.id, "text": ex.text, **ex.labels}) + "\n")
        return path


def _records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` for each record of a JSONL / CSV file or a saved Dataset folder."""
    if path.is_dir():
        from datasets import load_from_disk

        try:
            data = load_from_disk(str(path))
        except (FileNotFoundError, ValueError) as err:
            raise ValueError(
                f"{path} is not a datasets.Dataset saved with save_to_disk: {err}"
            ) from None
        if hasattr(data, "keys") and not hasattr(data, "column_names"):  # a DatasetDict
            raise ValueError(
                f"{path} holds a DatasetDict {list(data.keys())}; pass one split's folder"
            )
        for i, row in enumerate(data):
            yield f"{path}[{i}]", dict(row)
        return
    suffix = path.suffix.lower()
    with path.open(encoding="utf-8", newline="") as f:
        if suffix == ".jsonl":
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except ValueError as err:
                        raise ValueError(f"{path}:{lineno}: not JSON ({err})") from None
                    yield f"{path}:{lineno}", row
        elif suffix == ".csv":
            for lineno, row in enumerate(csv.DictReader(f), 2):
                yield f"{path}:{lineno}", dict(row)
        else:
            raise ValueError(
                f"unknown text format {suffix!r} for {path}; use .jsonl, .csv or a Dataset folder"
            )


def load_texts(
    path: str | Path,
    *,
    text_field: str = "text",
    id_field: str | None = "id",
    label_fields: Sequence[str] | None = None,
) -> TextCorpus:
    """Read labelled texts from a JSONL file, a CSV file or a saved ``datasets.Dataset``.

    Args:
        path: ``*.jsonl`` (one object per line), ``*.csv`` (a header row), or a folder
            written by ``Dataset.save_to_disk``.
        text_field: the column holding the text.
        id_field: the column holding the id; when it is ``None`` or absent from the
            data, ids are ``"{stem}-{row:06d}"`` (row = position in the file).
        label_fields: the columns to keep as labels (each must be present in every
            record); default: every other scalar column.

    Raises:
        FileNotFoundError: no such path.
        ValueError: a record without the text or a listed label, an empty text, a
            duplicate id (naming the file and line, or the row).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("text,language\\nHallo Welt,de\\nHello world,en\\n")
    >>> c = load_texts(p)
    >>> c.ids, c[1].labels
    (('t-000000', 't-000001'), {'language': 'en'})
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"text corpus not found: {path}")
    examples = []
    for row_no, (where, row) in enumerate(_records(path)):
        if not isinstance(row, Mapping) or text_field not in row:
            raise ValueError(f"{where}: no {text_field!r} field")
        has_id = id_field is not None and row.get(id_field) not in (None, "")
        ex_id = str(row[id_field]) if has_id else f"{path.stem}-{row_no:06d}"
        skip = {text_field, id_field}
        if label_fields is None:
            labels = {k: v for k, v in row.items() if k not in skip and isinstance(v, _SCALARS)}
        else:
            missing = [k for k in label_fields if k not in row]
            if missing:
                raise ValueError(f"{where}: text {ex_id!r} lacks label field(s) {missing}")
            labels = {k: row[k] for k in label_fields}
        try:
            examples.append(TextExample(ex_id, row[text_field], labels))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    try:
        return TextCorpus(examples, name=path.stem)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
