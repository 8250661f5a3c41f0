"""Idiom data: examples and corpora, readers, span alignment and batching."""

from .align import AlignedCorpus, AlignedExample, AlignmentError, align, get_tokenizer
from .batching import Batch, iter_batches, make_batch
from .example import IdiomCorpus, IdiomExample

__all__ = [
    "IdiomExample",
    "IdiomCorpus",
    "AlignedExample",
    "AlignedCorpus",
    "AlignmentError",
    "align",
    "get_tokenizer",
    "Batch",
    "iter_batches",
    "make_batch",
]
