"""One entry point for every corpus format: :func:`load_corpus` dispatches on the path."""

from __future__ import annotations

from pathlib import Path

from .epie import EPIE_SPLITS, is_epie_root, load_epie
from .example import IdiomCorpus

__all__ = ["load_corpus"]


def load_corpus(path_or_name: str | Path, *, split: str | None = None) -> IdiomCorpus:
    """Load a corpus from a JSONL file, a CSV file, an EPIE folder or by name.

    Dispatch:

    * ``*.jsonl`` -> :meth:`IdiomCorpus.from_jsonl` (records ``{id, text, span, label, meta}``);
    * ``*.csv`` -> :meth:`IdiomCorpus.from_csv` (columns ``id, text, start, end[, label]``);
    * the name ``"demo"`` (when no such path exists) -> the shipped
      :func:`~idiomlens.data.demo.demo_corpus`, ``split`` one of its splits or ``None``;
    * a folder with the EPIE layout (``Formal_Idioms_Corpus/`` or
      ``Static_Idioms_Corpus/``) -> :func:`~idiomlens.data.epie.load_epie` with ``split``
      (default ``"formal"``, the figurative formal sentences).

    ``split`` only applies to EPIE folders; giving it for a file is an error, so a typo
    cannot silently load the wrong data.

    Raises:
        FileNotFoundError: the path does not exist (the message names it).
        ValueError: an unknown file type, a folder that is not an EPIE corpus, a split
            for a file, or malformed content (naming the file and line).

    >>> load_corpus("missing.jsonl")
    Traceback (most recent call last):
    ...
    FileNotFoundError: corpus not found: missing.jsonl (and not the name 'demo')
    """
    path = Path(path_or_name)
    if not path.exists():
        if str(path_or_name) == "demo":
            from .demo import demo_corpus

            return demo_corpus(split)
        raise FileNotFoundError(f"corpus not found: {path} (and not the name 'demo')")
    if path.is_dir():
        if not is_epie_root(path):
            raise ValueError(
                f"{path} is a folder but not an EPIE corpus (no Formal_Idioms_Corpus/"
                "Formal_Idioms_Words.txt or Static_Idioms_Corpus/Static_Idioms_Words.txt)"
            )
        return load_epie(path, split or "formal")
    if split is not None:
        raise ValueError(
            f"split={split!r} only applies to EPIE folders ({', '.join(EPIE_SPLITS)}), "
            f"not to the file {path}"
        )
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return IdiomCorpus.from_jsonl(path)
    if suffix == ".csv":
        return IdiomCorpus.from_csv(path)
    raise ValueError(
        f"unknown corpus format {suffix or '(no suffix)'!r} for {path}; use .jsonl, .csv or an EPIE folder"
    )
