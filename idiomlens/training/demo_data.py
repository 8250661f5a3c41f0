"""Generate the demo corpus and the demo model's training text from :mod:`.idioms`.

Two products, both deterministic functions of the idiom table:

- :func:`build_demo_corpus` — the corpus the package ships
  (``idiomlens/assets/demo_corpus.jsonl``): for every idiom, one figurative sentence per
  figurative template (``fig-0001``...), its paraphrase with the idiom replaced by its
  meaning (``para-0001`` paraphrases ``fig-0001``; label ``figurative``, span = the
  meaning words), and one literal sentence per literal template (``lit-0001``...). Every
  example's ``meta`` holds ``idiom`` (the surface form), ``split``
  (``figurative`` / ``literal`` / ``paraphrase``) and, for paraphrases, ``pair``.
- :func:`training_sentences` — the language-model training text: sentences from the
  same templates with other subject/opener combinations. It OVERLAPS the shipped corpus
  in templates and idioms but never contains a shipped sentence, and it contains NO
  paraphrase (the meanings are held out, so paraphrases are a control the model has
  not seen).

Regenerate the shipped corpus with ``python -m idiomlens.training.demo_data OUT.jsonl``.

>>> corpus = build_demo_corpus()
>>> ex = corpus["fig-0001"]
>>> ex.idiom, ex.meta["split"], corpus["para-0001"].meta["pair"]
('spilled the beans', 'figurative', 'fig-0001')
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from functools import lru_cache

from ..data.example import IdiomCorpus, IdiomExample
from .idioms import IDIOMS, PREFIXES, SUBJECTS, Idiom

__all__ = ["render", "build_demo_corpus", "training_sentences", "all_sentences"]


def render(template: str, subject: str, prefix: str, filler: str) -> tuple[str, tuple[int, int]]:
    """Fill ``template`` and return ``(text, span)`` with ``span`` the char offsets of ``filler``.

    The first character of the sentence is capitalised (``{I}`` never starts a
    template, so ``text[span] == filler`` exactly).

    >>> render("{S} {I} at dawn.", "the coach", "Yesterday, ", "hit the road")
    ('Yesterday, the coach hit the road at dawn.', (21, 33))
    """
    before, after = template.split("{I}")
    before = prefix + before.replace("{S}", subject)
    after = after.replace("{S}", subject)
    text = before + filler + after
    text = text[0].upper() + text[1:]
    return text, (len(before), len(before) + len(filler))


def _shipped_choice(i: int, j: int, literal: bool) -> tuple[str, str]:
    """The (subject, prefix) of the shipped sentence for idiom ``i``, template ``j``."""
    k = 2 * i + 5 * j + (11 if literal else 0)
    return SUBJECTS[k % len(SUBJECTS)], PREFIXES[(i + 3 * j + literal) % len(PREFIXES)]


def build_demo_corpus(idioms: tuple[Idiom, ...] = IDIOMS) -> IdiomCorpus:
    """The shipped demo corpus (figurative, then paraphrase, then literal examples)."""
    fig, para, lit = [], [], []
    for i, idiom in enumerate(idioms):
        for j, template in enumerate(idiom.figurative):
            subject, prefix = _shipped_choice(i, j, literal=False)
            n = len(fig) + 1
            text, span = render(template, subject, prefix, idiom.surface)
            meta = {"idiom": idiom.surface, "split": "figurative", "meaning": idiom.meaning}
            fig.append(IdiomExample(f"fig-{n:04d}", text, span, "figurative", meta))
            text, span = render(template, subject, prefix, idiom.meaning)
            meta = {"idiom": idiom.surface, "split": "paraphrase", "pair": f"fig-{n:04d}"}
            para.append(IdiomExample(f"para-{n:04d}", text, span, "figurative", meta))
        for j, template in enumerate(idiom.literal):
            subject, prefix = _shipped_choice(i, j, literal=True)
            text, span = render(template, subject, prefix, idiom.surface)
            meta = {"idiom": idiom.surface, "split": "literal"}
            lit.append(IdiomExample(f"lit-{len(lit) + 1:04d}", text, span, "literal", meta))
    return IdiomCorpus(fig + para + lit, name="idiomlens-demo")


def all_sentences(idioms: tuple[Idiom, ...] = IDIOMS) -> Iterator[str]:
    """Every figurative and literal sentence the templates can produce (no paraphrases)."""
    for idiom in idioms:
        for template in idiom.figurative + idiom.literal:
            for subject in SUBJECTS:
                for prefix in PREFIXES:
                    yield render(template, subject, prefix, idiom.surface)[0]


def training_sentences(n: int, *, seed: int = 0) -> list[str]:
    """``n`` distinct training sentences, none in the shipped corpus, drawn with ``seed``.

    Sampling uses a local ``random.Random(seed)``; the result depends only on ``n``,
    ``seed`` and the idiom table.
    """
    pool = _training_pool()
    if n > len(pool):
        raise ValueError(f"asked for {n} training sentences, the templates give {len(pool)}")
    return random.Random(seed).sample(pool, n)


@lru_cache(maxsize=1)
def _training_pool() -> tuple[str, ...]:
    """All template sentences minus the shipped ones, sorted (the sampling frame)."""
    shipped = {ex.text for ex in build_demo_corpus()}
    return tuple(sorted(set(all_sentences()) - shipped))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the demo corpus as JSONL.")
    parser.add_argument("out", help="output .jsonl path")
    args = parser.parse_args(argv)
    build_demo_corpus().to_jsonl(args.out)


if __name__ == "__main__":
    main()
