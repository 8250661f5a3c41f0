"""The idiom corpus that ships with idiomlens (``idiomlens/assets/demo_corpus.jsonl``).

412 English sentences over 34 common idioms, written by the idiomlens authors
(generated from the templates in :mod:`idiomlens.training.idioms`):

- ``fig-NNNN`` (170): the idiom used figuratively, label ``figurative``;
- ``para-NNNN`` (170): ``fig-NNNN`` with the idiom replaced by its meaning, label
  ``figurative``, span = the meaning words, ``meta["pair"] == "fig-NNNN"``;
- ``lit-NNNN`` (72): the same phrase used literally, label ``literal``.

Every example's ``meta`` has ``idiom`` (the idiom's surface form) and ``split``
(``figurative`` / ``paraphrase`` / ``literal``).
"""

from __future__ import annotations

from importlib import resources

from .example import IdiomCorpus

__all__ = ["demo_corpus", "DEMO_SPLITS"]

DEMO_SPLITS = ("figurative", "literal", "paraphrase")


def demo_corpus(split: str | None = None) -> IdiomCorpus:
    """Read the shipped demo corpus, offline; ``split`` keeps one of :data:`DEMO_SPLITS`.

    >>> corpus = demo_corpus()
    >>> len(corpus), corpus["fig-0001"].idiom
    (412, 'spilled the beans')
    >>> len(demo_corpus("literal"))
    72
    """
    if split is not None and split not in DEMO_SPLITS:
        raise ValueError(f"demo_corpus: split must be one of {DEMO_SPLITS} or None, got {split!r}")
    with resources.as_file(resources.files("idiomlens") / "assets" / "demo_corpus.jsonl") as path:
        corpus = IdiomCorpus.from_jsonl(path)
    corpus.name = "idiomlens-demo"
    if split is None:
        return corpus
    sub = corpus.filter(lambda ex: ex.meta.get("split") == split)
    sub.name = f"idiomlens-demo-{split}"
    return sub
