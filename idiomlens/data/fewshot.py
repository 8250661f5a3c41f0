"""Few-shot prompts for multiple-choice data, in the geometry paper's MMLU format.

The representation-landscape paper ("The representation landscape of few-shot learning
and fine-tuning in large transformer models") extracts the last token of prompts like::

    The following are multiple choice questions (with answers) about anatomy.

    {dev question 1}
    A. ...
    B. ...
    C. ...
    D. ...
    Answer: C

    ... (k shots) ...

    {test question}
    A. ...
    B. ...
    C. ...
    D. ...
    Answer:

:func:`few_shot_prompts` builds them from records ``{question, choices, answer,
subject[, id]}`` (``answer`` an index into ``choices`` or a letter): for each subject the
dev records of that subject are put in a seeded order (``random.Random(f"{seed}:{subject}")``,
independent of everything else) and the first ``k`` are the shots of every test
question of that subject, so the context is fixed per subject, as in the paper.
Subjects are printed with ``_`` as spaces (``high_school_biology`` -> ``high school
biology``). The result is a :class:`~idiomlens.data.texts.TextCorpus` whose labels are
``subject`` and ``answer`` (the letter), ready for :func:`~idiomlens.extract` with
``pool="last"``.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterable, Mapping
from typing import Any

from .texts import TextCorpus, TextExample

__all__ = ["few_shot_prompts", "format_question", "HEADER"]

HEADER = "The following are multiple choice questions (with answers) about {subject}.\n\n"
LETTERS = string.ascii_uppercase


def _answer_letter(record: Mapping[str, Any], where: str) -> str:
    n = len(record["choices"])
    answer = record["answer"]
    if isinstance(answer, str) and not answer.strip().isdigit():
        letter = answer.strip().upper()
        if len(letter) != 1 or LETTERS.find(letter) not in range(n):
            raise ValueError(f"{where}: answer {answer!r} is not one of {LETTERS[:n]}")
        return letter
    index = int(answer)
    if not 0 <= index < n:
        raise ValueError(f"{where}: answer index {index} is outside the {n} choices")
    return LETTERS[index]


def _check(record: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(record, Mapping):
        raise ValueError(f"{where}: a record is a mapping, got {type(record).__name__}")
    missing = [k for k in ("question", "choices", "answer", "subject") if k not in record]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}")
    choices = record["choices"]
    if isinstance(choices, str) or not 2 <= len(choices) <= len(LETTERS):
        raise ValueError(f"{where}: choices must be a list of 2..26 strings, got {choices!r}")
    return record


def format_question(record: Mapping[str, Any], *, answer: bool) -> str:
    """One question block: question, lettered choices, ``Answer:`` (with the letter and a
    blank line when ``answer``).

    >>> print(format_question({"question": "2+2?", "choices": ["3", "4"], "answer": 1,
    ...                        "subject": "math"}, answer=True), end="")
    2+2?
    A. 3
    B. 4
    Answer: B
    <BLANKLINE>
    """
    lines = [str(record["question"]).strip()]
    lines += [f"{LETTERS[i]}. {str(c).strip()}" for i, c in enumerate(record["choices"])]
    text = "\n".join(lines) + "\nAnswer:"
    if answer:
        text += f" {_answer_letter(record, 'record')}\n\n"
    return text


def few_shot_prompts(
    test: Iterable[Mapping[str, Any]],
    dev: Iterable[Mapping[str, Any]] | None = None,
    *,
    k: int = 5,
    seed: int = 0,
    name: str = "few-shot",
) -> TextCorpus:
    """``k``-shot prompts for every ``test`` record, shots from ``dev`` of the same subject.

    Args:
        test: records ``{question, choices, answer, subject[, id]}`` (dicts, or a
            ``datasets.Dataset``); ``answer`` an index into ``choices`` or a letter.
        dev: the records shots are drawn from (MMLU's ``dev`` split); needed when ``k > 0``.
        k: shots per prompt (0: the header and the question only).
        seed: orders each subject's dev records (see the module docstring).
        name: the corpus name.

    Returns:
        A :class:`~idiomlens.data.texts.TextCorpus`: ids are the records' ``id`` or
        ``"{subject}-{n:05d}"`` (``n`` counts that subject's test records), labels
        ``subject`` and ``answer`` (a letter).

    Raises:
        ValueError: a record lacks a field or has a bad answer (naming it), or a subject
            has fewer than ``k`` dev records (naming the subject).

    >>> dev = [{"question": f"d{i}?", "choices": ["x", "y"], "answer": i % 2,
    ...         "subject": "toy"} for i in range(3)]
    >>> test = [{"question": "t?", "choices": ["x", "y"], "answer": "B", "subject": "toy"}]
    >>> c = few_shot_prompts(test, dev, k=2)
    >>> c.ids, c[0].labels
    (('toy-00000',), {'subject': 'toy', 'answer': 'B'})
    >>> c[0].text.startswith(HEADER.format(subject="toy")), c[0].text.endswith("t?\\nA. x\\nB. y\\nAnswer:")
    (True, True)
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    by_subject: dict[str, list[Mapping[str, Any]]] = {}
    for i, record in enumerate(dev or ()):
        record = _check(record, f"dev record {i}")
        _answer_letter(record, f"dev record {i}")
        by_subject.setdefault(str(record["subject"]), []).append(record)
    contexts: dict[str, str] = {}
    counts: dict[str, int] = {}
    examples = []
    for i, record in enumerate(test):
        where = f"test record {record.get('id', i) if isinstance(record, Mapping) else i}"
        record = _check(record, where)
        subject = str(record["subject"])
        if subject not in contexts:
            contexts[subject] = _context(subject, by_subject.get(subject, []), k, seed)
        n = counts[subject] = counts.get(subject, -1) + 1
        ex_id = str(record["id"]) if record.get("id") not in (None, "") else f"{subject}-{n:05d}"
        text = contexts[subject] + format_question(record, answer=False)
        labels = {"subject": subject, "answer": _answer_letter(record, where)}
        examples.append(TextExample(ex_id, text, labels))
    return TextCorpus(examples, name=name)


def _context(subject: str, pool: list[Mapping[str, Any]], k: int, seed: int) -> str:
    """The header and ``k`` answered shots of ``subject`` (seeded order)."""
    if len(pool) < k:
        raise ValueError(f"subject {subject!r}: {len(pool)} dev record(s), fewer than k={k}")
    order = list(range(len(pool)))
    random.Random(f"{seed}:{subject}").shuffle(order)
    shots = "".join(format_question(pool[j], answer=True) for j in order[:k])
    return HEADER.format(subject=subject.replace("_", " ")) + shots
