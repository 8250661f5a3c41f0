"""Idiom data: examples and corpora, readers, span alignment and batching."""

from .align import (
    AlignedCorpus,
    AlignedExample,
    AlignmentError,
    align,
    alignment_report,
    core_span,
    get_tokenizer,
)
from .batching import Batch, iter_batches, make_batch
from .demo import demo_corpus
from .detok import detokenize
from .epie import EPIE_SPLITS, load_epie
from .example import IdiomCorpus, IdiomExample
from .fewshot import few_shot_prompts
from .readers import load_corpus
from .texts import TextCorpus, TextExample, load_texts

__all__ = [
    "IdiomExample",
    "IdiomCorpus",
    "AlignedExample",
    "AlignedCorpus",
    "AlignmentError",
    "align",
    "alignment_report",
    "core_span",
    "get_tokenizer",
    "Batch",
    "iter_batches",
    "make_batch",
    "detokenize",
    "EPIE_SPLITS",
    "load_epie",
    "load_corpus",
    "demo_corpus",
    "TextExample",
    "TextCorpus",
    "load_texts",
    "few_shot_prompts",
]
