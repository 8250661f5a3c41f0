"""Idiom examples and corpora: the unit of data every analysis takes.

An :class:`IdiomExample` is a text with one marked idiom occurrence, given as a
character span ``(start, end)`` (end exclusive), a label (``"figurative"`` or
``"literal"``) and a stable id. An :class:`IdiomCorpus` is an immutable sequence of
examples with unique ids and readers/writers for JSONL, CSV and ``datasets``.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

__all__ = ["IdiomExample", "IdiomCorpus", "LABELS"]

LABELS = ("figurative", "literal")


@dataclass(frozen=True)
class IdiomExample:
    """One sentence with one marked idiom occurrence.

    Args:
        id: stable identifier, unique within a corpus (e.g. ``"formal-000123"``).
        text: the sentence.
        span: character offsets ``(start, end)`` of the idiom, ``end`` exclusive.
        label: ``"figurative"`` or ``"literal"``.
        meta: free-form extra fields (idiom lemma, source file, word spans, ...).

    >>> ex = IdiomExample("ex-1", "He spilled the beans.", (3, 20))
    >>> ex.idiom
    'spilled the beans'
    """

    id: str
    text: str
    span: tuple[int, int]
    label: str = "figurative"
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"example id must be a non-empty string, got {self.id!r}")
        span = tuple(int(x) for x in self.span)
        if len(span) != 2:
            raise ValueError(f"example {self.id!r}: span must be (start, end), got {self.span!r}")
        object.__setattr__(self, "span", span)
        start, end = span
        if not 0 <= start < end <= len(self.text):
            raise ValueError(
                f"example {self.id!r}: span {span} is not inside the text "
                f"(length {len(self.text)}): {self.text!r}"
            )
        if self.label not in LABELS:
            raise ValueError(
                f"example {self.id!r}: label must be one of {LABELS}, got {self.label!r}"
            )

    @property
    def idiom(self) -> str:
        """The text covered by the span."""
        return self.text[self.span[0] : self.span[1]]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict ``{id, text, span, label, meta}``."""
        return {
            "id": self.id,
            "text": self.text,
            "span": list(self.span),
            "label": self.label,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> IdiomExample:
        """Inverse of :meth:`to_dict`; ``label`` and ``meta`` are optional."""
        missing = [k for k in ("id", "text", "span") if k not in row]
        if missing:
            raise ValueError(f"record {row.get('id', row)!r} lacks field(s) {missing}")
        meta = row.get("meta") or {}
        if isinstance(meta, str):
            meta = json.loads(meta)
        return cls(
            id=str(row["id"]),
            text=row["text"],
            span=tuple(row["span"]),
            label=row.get("label") or "figurative",
            meta=dict(meta),
        )


class IdiomCorpus(Sequence[IdiomExample]):
    """An immutable, ordered sequence of :class:`IdiomExample` with unique ids.

    Args:
        examples: the examples, in corpus order.
        name: a label used in messages (readers set it, e.g. ``"epie-formal"``).
        skipped: for readers called with ``on_error="skip"``: the id each dropped line
            would have had -> why (``"path:line: reason"``); kept as ``.skipped``.

    >>> corpus = IdiomCorpus([IdiomExample("a", "Break a leg!", (0, 11))])
    >>> len(corpus), corpus["a"].idiom
    (1, 'Break a leg')
    """

    def __init__(
        self,
        examples: Iterable[IdiomExample],
        *,
        name: str = "corpus",
        skipped: Mapping[str, str] | None = None,
    ) -> None:
        self._examples: tuple[IdiomExample, ...] = tuple(examples)
        self.name = name
        #: ids a reader dropped (``on_error="skip"``) -> why; not carried by slicing.
        self.skipped: dict[str, str] = dict(skipped or {})
        self._index: dict[str, int] = {}
        for i, ex in enumerate(self._examples):
            if not isinstance(ex, IdiomExample):
                raise TypeError(f"corpus item {i} is a {type(ex).__name__}, not an IdiomExample")
            if ex.id in self._index:
                raise ValueError(f"duplicate example id {ex.id!r} in {name}")
            self._index[ex.id] = i

    @overload
    def __getitem__(self, key: int | str) -> IdiomExample: ...
    @overload
    def __getitem__(self, key: slice) -> IdiomCorpus: ...
    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        if isinstance(key, str):
            try:
                return self._examples[self._index[key]]
            except KeyError:
                raise KeyError(f"no example with id {key!r} in {self.name}") from None
        if isinstance(key, slice):
            return IdiomCorpus(self._examples[key], name=self.name)
        return self._examples[key]

    def __len__(self) -> int:
        return len(self._examples)

    def __iter__(self) -> Iterator[IdiomExample]:
        return iter(self._examples)

    def __repr__(self) -> str:
        return f"IdiomCorpus(name={self.name!r}, n={len(self)})"

    @property
    def ids(self) -> tuple[str, ...]:
        """Example ids in corpus order."""
        return tuple(ex.id for ex in self._examples)

    def filter(self, predicate: Any) -> IdiomCorpus:
        """The examples for which ``predicate(example)`` is true; ids are unchanged."""
        return IdiomCorpus([ex for ex in self if predicate(ex)], name=self.name)

    def select(self, ids: Iterable[str]) -> IdiomCorpus:
        """The examples with the given ids, in the given order."""
        return IdiomCorpus([self[i] for i in ids], name=self.name)

    def content_hash(self) -> str:
        """A SHA-256 over ids, texts, spans and labels (order-sensitive), for caching."""
        h = hashlib.sha256()
        for ex in self._examples:
            h.update(json.dumps([ex.id, ex.text, list(ex.span), ex.label]).encode())
            h.update(b"\n")
        return h.hexdigest()

    # ---- readers and writers -------------------------------------------------------

    @classmethod
    def from_jsonl(cls, path: str | Path) -> IdiomCorpus:
        """Read ``{id, text, span, label, meta}`` records, one JSON object per line."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"corpus file not found: {path}")
        examples = []
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    examples.append(IdiomExample.from_dict(json.loads(line)))
                except (ValueError, TypeError, KeyError) as err:
                    raise ValueError(f"{path}:{lineno}: {err}") from None
        return cls(examples, name=path.stem)

    def to_jsonl(self, path: str | Path) -> Path:
        """Write one JSON object per example; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            for ex in self:
                f.write(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n")
        return path

    @classmethod
    def from_csv(cls, path: str | Path) -> IdiomCorpus:
        """Read a CSV with columns ``id, text, start, end[, label]`` (extra columns -> meta)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"corpus file not found: {path}")
        examples = []
        with path.open(encoding="utf-8", newline="") as f:
            for lineno, row in enumerate(csv.DictReader(f), 2):
                try:
                    span = (int(row.pop("start")), int(row.pop("end")))
                    ex_id, text = row.pop("id"), row.pop("text")
                    label = row.pop("label", None) or "figurative"
                except (KeyError, TypeError, ValueError) as err:
                    raise ValueError(f"{path}:{lineno}: bad or missing column ({err})") from None
                try:
                    examples.append(IdiomExample(ex_id, text, span, label, meta=row))
                except ValueError as err:
                    raise ValueError(f"{path}:{lineno}: {err}") from None
        return cls(examples, name=path.stem)

    def to_csv(self, path: str | Path) -> Path:
        """Write ``id, text, start, end, label`` (meta is not written)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "text", "start", "end", "label"])
            for ex in self:
                writer.writerow([ex.id, ex.text, ex.span[0], ex.span[1], ex.label])
        return path

    @classmethod
    def from_dataset(cls, dataset: Any, *, name: str = "dataset") -> IdiomCorpus:
        """Build from a ``datasets.Dataset`` with columns ``id, text, span[, label, meta]``."""
        return cls((IdiomExample.from_dict(dict(row)) for row in dataset), name=name)

    def to_dataset(self) -> Any:
        """A ``datasets.Dataset`` with columns ``id, text, span, label, meta`` (meta as JSON)."""
        from datasets import Dataset

        rows = [ex.to_dict() for ex in self]
        for row in rows:
            row["meta"] = json.dumps(row["meta"])
        return Dataset.from_list(rows)
