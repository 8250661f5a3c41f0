"""Reader for the EPIE idiom corpus (Saxena & Paul, 2020) in its published layout.

::

    root/Formal_Idioms_Corpus/Formal_Idioms_Words.txt    one tokenised sentence per line
    root/Formal_Idioms_Corpus/Formal_Idioms_Tags.txt     one tag per word: O, B-IDIOM, I-IDIOM
    root/Formal_Idioms_Corpus/Formal_Idioms_Labels.txt   1 figurative, 0 literal
    root/Formal_Idioms_Corpus/translated_sentences.txt   a paraphrase per line (not tagged)
    root/Formal_Idioms_Corpus/Formal_Idioms_Candidates.txt  (optional) the idiom per line
    root/Static_Idioms_Corpus/Static_Idioms_{Words,Tags}.txt     (+ optional _Candidates)

Splits: ``formal`` (label 1, figurative; 2,761 in the published corpus),
``formal-literal`` (label 0, literal; 375), ``static`` (every line, figurative; 21,891)
and ``trans`` (the paraphrase of every figurative formal sentence; 2,761).

Ids are ``formal-NNNNNN`` (both formal splits), ``static-NNNNNN`` and ``trans-NNNNNN``
with ``NNNNNN`` the 0-based line number in the source file, so they are stable and never
shifted by filtering: ``formal`` and ``formal-literal`` ids interleave with gaps, and
``trans-000123`` is the paraphrase of ``formal-000123``.
Problems are reported as ``path:line`` with 1-based line numbers (as editors show them),
so ``formal-000123`` is line 124.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .detok import detokenize
from .example import IdiomCorpus, IdiomExample

__all__ = [
    "EPIE_SPLITS",
    "EpieProblem",
    "load_epie",
    "is_epie_root",
    "paraphrase_span",
    "split_words",
]

log = logging.getLogger(__name__)

EPIE_SPLITS = ("formal", "formal-literal", "static", "trans")
FORMAL_DIR, STATIC_DIR = "Formal_Idioms_Corpus", "Static_Idioms_Corpus"
_TAGS = {"O", "B-IDIOM", "I-IDIOM"}
_SPLIT = re.compile(r"[ \t\r\f\v]+")
_MAX_LISTED = 50


@dataclass(frozen=True)
class EpieProblem:
    """A malformed line: ``path:line`` (1-based), the id it would have had, and why."""

    path: str
    line: int
    id: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} ({self.id}): {self.message}"


class _LineError(ValueError):
    def __init__(self, path: Path, message: str):
        super().__init__(message)
        self.path = path


def is_epie_root(path: str | Path) -> bool:
    """Whether ``path`` is a folder with the EPIE layout (either corpus sub-folder).

    >>> is_epie_root("/nonexistent")
    False
    """
    path = Path(path)
    return (path / FORMAL_DIR / "Formal_Idioms_Words.txt").is_file() or (
        path / STATIC_DIR / "Static_Idioms_Words.txt"
    ).is_file()


def split_words(line: str) -> list[str]:
    """The whitespace tokens of a corpus line, split on ASCII whitespace only.

    ``str.split()`` would also split on a no-break space (``\\xa0``) inside a word, so the
    word count would no longer match the tag count.

    >>> split_words("a  b\\xa0c\\t d ")
    ['a', 'b\\xa0c', 'd']
    """
    stripped = line.strip(" \t\r\f\v")
    return _SPLIT.split(stripped) if stripped else []


def _read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 file split on ``\\n`` only (a trailing newline adds no line).

    ``str.splitlines`` is avoided on purpose: it also splits on characters such as
    ``\\x0c`` or ``\\u2028`` that may occur inside a sentence and would shift every
    later line.
    """
    if not path.is_file():
        raise FileNotFoundError(f"EPIE file not found: {path}")
    text = path.read_text(encoding="utf-8-sig")
    lines = [ln.removesuffix("\r") for ln in text.split("\n")]
    return lines[:-1] if lines and lines[-1] == "" else lines


def _parse_tagged(
    words_line: str, tags_line: str, words_path: Path, tags_path: Path
) -> tuple[list[str], list[int]]:
    """``(words, idiom word indices)``; raises :class:`_LineError` on a malformed pair.

    Tags are compared case-insensitively (``b-idiom`` is ``B-IDIOM``); every tag other
    than ``O`` marks an idiom word, whether it begins a run or continues one.
    """
    words, tags = split_words(words_line), split_words(tags_line.upper())
    if not words:
        raise _LineError(words_path, "empty sentence")
    if len(tags) != len(words):
        raise _LineError(tags_path, f"{len(tags)} tags for {len(words)} words")
    unknown = sorted(set(tags) - _TAGS)
    if unknown:
        raise _LineError(tags_path, f"unknown tag(s) {unknown}; expected O, B-IDIOM, I-IDIOM")
    idx = [i for i, t in enumerate(tags) if t != "O"]
    if not idx:
        raise _LineError(tags_path, "no B-IDIOM/I-IDIOM tag")
    return words, idx


def _tagged_example(
    ex_id: str, words: list[str], idx: list[int], label: str, meta: dict[str, Any]
) -> IdiomExample:
    """An example whose span runs from the first to the last tagged word."""
    text, spans = detokenize(words)
    word_spans = [list(spans[i]) for i in idx]
    meta = {
        **meta,
        "words": [words[i] for i in idx],
        "word_range": [idx[0], idx[-1]],
        "idiom_word_spans": word_spans,
        "contiguous": idx == list(range(idx[0], idx[-1] + 1)),
    }
    return IdiomExample(ex_id, text, (word_spans[0][0], word_spans[-1][1]), label, meta)


def paraphrase_span(
    source: Sequence[str], paraphrase: Sequence[str], idiom_words: Sequence[int] = ()
) -> tuple[tuple[int, int], str]:
    """Word range ``[first, last]`` of the paraphrase that differs from its source.

    The paraphrase is not tagged, so its "idiom" is the region replaced by the meaning:
    strip the longest common prefix and then the longest common suffix of the two word
    lists (compared exactly); what remains of the paraphrase is the span. This is the
    narrowest region outside of which the sentences agree word for word. Edge cases:

    * ``"diff"``: the usual case above.
    * ``"identical"``: the sentences are the same; the source's idiom words
      ``idiom_words`` (indices, valid in both) are used.
    * ``"deletion"``: the paraphrase only drops words; the span is the paraphrase word
      just before the deletion point (the first word if the deletion is at the start).

    Returns ``((first, last), rule)`` with inclusive word indices into ``paraphrase``.

    >>> paraphrase_span("he spilled the beans .".split(), "he told the secret .".split())
    ((1, 3), 'diff')
    """
    if not paraphrase:
        raise ValueError("empty paraphrase")
    n_src, n_par = len(source), len(paraphrase)
    pre = 0
    while pre < min(n_src, n_par) and source[pre] == paraphrase[pre]:
        pre += 1
    if pre == n_src == n_par:
        if not idiom_words:
            raise ValueError("paraphrase is identical to its source and no idiom words given")
        return (idiom_words[0], idiom_words[-1]), "identical"
    suf = 0
    while suf < min(n_src, n_par) - pre and source[-1 - suf] == paraphrase[-1 - suf]:
        suf += 1
    first, last = pre, n_par - suf - 1
    if last < first:  # nothing of the paraphrase differs: words were only deleted
        anchor = max(pre - 1, 0)
        return (anchor, anchor), "deletion"
    return (first, last), "diff"


def _trans_example(
    ex_id: str, source: IdiomExample, para_line: str, src_words: list[str], idx: list[int]
) -> IdiomExample:
    words = split_words(para_line)
    if not words:
        raise ValueError("empty paraphrase")
    (first, last), rule = paraphrase_span(src_words, words, idx)
    text, spans = detokenize(words)
    meta = {
        "words": words[first : last + 1],
        "word_range": [first, last],
        "pair": source.id,
        "source_idiom": source.idiom,
        "span_rule": rule,
    }
    return IdiomExample(ex_id, text, (spans[first][0], spans[last][1]), "figurative", meta)


@dataclass(frozen=True)
class _Layout:
    """The files one split reads (``labels``/``translated`` only for the formal corpus)."""

    words: Path
    tags: Path
    labels: Path | None
    candidates: Path
    translated: Path | None

    def extra_files(self) -> tuple[Path, ...]:
        """The label/paraphrase files this split needs, and the candidates file if present."""
        paths = tuple(p for p in (self.labels, self.translated) if p is not None)
        return paths + ((self.candidates,) if self.candidates.is_file() else ())

    @classmethod
    def of(cls, root: Path, split: str) -> _Layout:
        if split == "static":
            d = root / STATIC_DIR
            return cls(
                d / "Static_Idioms_Words.txt",
                d / "Static_Idioms_Tags.txt",
                None,
                d / "Static_Idioms_Candidates.txt",
                None,
            )
        d = root / FORMAL_DIR
        return cls(
            d / "Formal_Idioms_Words.txt",
            d / "Formal_Idioms_Tags.txt",
            d / "Formal_Idioms_Labels.txt",
            d / "Formal_Idioms_Candidates.txt",
            d / "translated_sentences.txt" if split == "trans" else None,
        )


_ID_PREFIX = {"formal": "formal", "formal-literal": "formal", "static": "static", "trans": "trans"}
_WANT_LABEL = {"formal": "1", "formal-literal": "0", "trans": "1"}
_Row = tuple[int, IdiomExample, list[str], list[int]]


def load_epie(root: str | Path, split: str = "formal", *, on_error: str = "raise") -> IdiomCorpus:
    """Read one split of the EPIE corpus from its published folder layout.

    Sentences are detokenised with :func:`~idiomlens.data.detok.detokenize`; the span runs
    from the first to the last idiom-tagged word (``B-IDIOM``/``I-IDIOM``), words tagged
    ``O`` in between included. ``meta`` holds ``split``, ``source`` (``file:line``, 1-based),
    ``words`` (the idiom words), ``word_range`` (first and last word index),
    ``idiom_word_spans`` (each tagged word's character span, for non-contiguous idioms),
    ``contiguous`` and, if the ``Candidates`` file exists, ``candidate`` (the idiom).

    ``trans`` examples keep their source's label ``"figurative"`` (as the paraphrases of
    :func:`~idiomlens.data.demo.demo_corpus` do; ``meta["split"] == "trans"`` tells them
    apart); their span, the words that replaced the idiom, is found by
    :func:`paraphrase_span` (rule in ``meta["span_rule"]``), ``meta["pair"]`` names the
    formal sentence and ``meta["source_idiom"]`` its idiom. ``translated_sentences.txt`` may
    hold one line per formal line (the published layout; paraphrases of literal lines are
    ignored) or one per figurative line; any other line count is an error that cannot be
    skipped, since no pairing is possible.

    Args:
        root: the folder holding ``Formal_Idioms_Corpus`` / ``Static_Idioms_Corpus``.
        split: one of :data:`EPIE_SPLITS`.
        on_error: malformed lines (tag count != word count, no idiom tag, unknown tag, bad
            label, empty line, lines beyond the end of a sibling file) are collected,
            reported as ``path:line (id): reason``, and either raised together as one
            ``ValueError`` (``"raise"``, default) or skipped with a warning (``"skip"``; the
            returned corpus's ``.skipped`` maps each would-be id to its reason).

    >>> import pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp()) / "EPIE_Corpus"
    >>> (root / STATIC_DIR).mkdir(parents=True)
    >>> _ = (root / STATIC_DIR / "Static_Idioms_Words.txt").write_text(
    ...     "He did n't spill the beans .\\n")
    >>> _ = (root / STATIC_DIR / "Static_Idioms_Tags.txt").write_text(
    ...     "O O O B-IDIOM I-IDIOM I-IDIOM O\\n")
    >>> ex = load_epie(root, "static")[0]
    >>> ex.id, ex.text, ex.idiom
    ('static-000000', "He didn't spill the beans.", 'spill the beans')
    """
    if split not in EPIE_SPLITS:
        raise ValueError(f"unknown EPIE split {split!r}; valid splits: {', '.join(EPIE_SPLITS)}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"EPIE folder not found: {root}")
    layout = _Layout.of(root, split)
    files = {p: _read_lines(p) for p in (layout.words, layout.tags) + layout.extra_files()}
    _drop_mismatched_candidates(files, layout)
    problems = _extra_lines(root, files, layout.translated, _ID_PREFIX[split])
    rows = _read_tagged(root, split, layout, files, problems)
    if split == "trans":
        examples = _pair_paraphrases(root, layout, files, rows, problems)
    else:
        examples = [row[1] for row in rows]
    problems.sort(key=lambda p: (p.line, p.path))
    if problems and on_error == "raise":
        listed = "\n  ".join(str(p) for p in problems[:_MAX_LISTED])
        more = len(problems) - _MAX_LISTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise ValueError(
            f"EPIE split {split!r} in {root}: {len(problems)} malformed line(s) "
            f"(pass on_error='skip' to skip them):\n  {listed}{tail}"
        )
    for p in problems:
        log.warning("skipping EPIE line %s", p)
    skipped = {p.id: f"{p.path}:{p.line}: {p.message}" for p in problems}
    log.info("EPIE %s: %d examples from %s (%d skipped)", split, len(examples), root, len(skipped))
    return IdiomCorpus(examples, name=f"epie-{split}", skipped=skipped)


def _rel(root: Path, path: Path) -> str:
    """``path`` relative to the corpus root, for messages and ``meta["source"]``."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _drop_mismatched_candidates(files: dict[Path, list[str]], layout: _Layout) -> None:
    """The optional candidates file only decorates ``meta``: ignore it if it does not fit."""
    cand = files.get(layout.candidates)
    if cand is not None and len(cand) != len(files[layout.words]):
        log.warning(
            "ignoring %s: %d lines, but %s has %d",
            layout.candidates,
            len(cand),
            layout.words,
            len(files[layout.words]),
        )
        del files[layout.candidates]


def _extra_lines(
    root: Path, files: dict[Path, list[str]], translated: Path | None, prefix: str
) -> list[EpieProblem]:
    """Lines past the shortest sibling file (the paraphrase file is checked on pairing)."""
    n = min(len(v) for p, v in files.items() if p != translated)
    return [
        EpieProblem(
            _rel(root, p),
            i + 1,
            f"{prefix}-{i:06d}",
            f"beyond the end ({n} lines) of a sibling file",
        )
        for p, lines in files.items()
        if p != translated
        for i in range(n, len(lines))
    ]


def _read_tagged(
    root: Path,
    split: str,
    layout: _Layout,
    files: dict[Path, list[str]],
    problems: list[EpieProblem],
) -> list[_Row]:
    """Parse the tagged lines that belong to ``split`` into examples (corpus order)."""
    n = min(len(v) for p, v in files.items() if p != layout.translated)
    labels = files[layout.labels] if layout.labels is not None else None
    candidates = files.get(layout.candidates)
    prefix, rows, words_rel = _ID_PREFIX[split], [], _rel(root, layout.words)
    for line in range(n):
        try:
            if labels is not None and layout.labels is not None:
                value = labels[line].strip()
                if value not in ("0", "1"):
                    raise _LineError(layout.labels, f"label must be 0 or 1, got {value!r}")
                if value != _WANT_LABEL[split]:
                    continue
            words, idx = _parse_tagged(
                files[layout.words][line], files[layout.tags][line], layout.words, layout.tags
            )
        except _LineError as err:
            problems.append(
                EpieProblem(_rel(root, err.path), line + 1, f"{prefix}-{line:06d}", str(err))
            )
            continue
        meta: dict[str, Any] = {"split": split, "source": f"{words_rel}:{line + 1}"}
        if candidates is not None:
            meta["candidate"] = candidates[line].strip()
        label = "literal" if split == "formal-literal" else "figurative"
        ex_id = f"{'static' if split == 'static' else 'formal'}-{line:06d}"
        rows.append((line, _tagged_example(ex_id, words, idx, label, meta), words, idx))
    return rows


def _pair_paraphrases(
    root: Path,
    layout: _Layout,
    files: dict[Path, list[str]],
    rows: list[_Row],
    problems: list[EpieProblem],
) -> list[IdiomExample]:
    """Pair each figurative formal sentence with its paraphrase (see :func:`load_epie`)."""
    assert layout.translated is not None and layout.labels is not None
    para, n_lines = files[layout.translated], len(files[layout.words])
    figurative = [i for i, v in enumerate(files[layout.labels]) if v.strip() == "1"]
    if len(para) == n_lines:
        para_line = {i: i for i in range(n_lines)}
    elif len(para) == len(figurative):
        para_line = {line: k for k, line in enumerate(figurative)}
    else:
        raise ValueError(
            f"{layout.translated}: {len(para)} lines, but expected one per formal line "
            f"({n_lines}) or one per figurative formal line ({len(figurative)})"
        )
    rel = _rel(root, layout.translated)
    out = []
    for line, source, words, idx in rows:
        k = para_line[line]
        ex_id = f"trans-{line:06d}"
        try:
            ex = _trans_example(ex_id, source, para[k], words, idx)
        except ValueError as err:
            problems.append(EpieProblem(rel, k + 1, ex_id, str(err)))
            continue
        ex.meta.update(split="trans", source=f"{rel}:{k + 1}")
        out.append(ex)
    return out
