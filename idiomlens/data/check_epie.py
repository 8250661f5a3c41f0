"""Check an EPIE folder against a tokenizer: counts and alignment quality per split.

Run as ``python -m idiomlens.data.check_epie ROOT TOKENIZER [--splits ...]`` where
``TOKENIZER`` is a local folder with a fast tokenizer (``tokenizer.json``; read offline).
It prints, per split, the number of examples, how many align, and the fraction whose
token span covers the idiom and little else (:func:`~idiomlens.data.align.alignment_report`),
then the first few examples that are not clean, and exits non-zero when a fraction is
below ``--min-clean`` (default 0.995).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from .align import align, alignment_report
from .epie import EPIE_SPLITS, load_epie

__all__ = ["check_epie", "main"]


def check_epie(
    root: str, tokenizer: Any, splits: Sequence[str] = ("formal", "static", "trans")
) -> dict[str, Any]:
    """Alignment reports per split: ``{split: DataFrame}`` (see :func:`alignment_report`).

    >>> from idiomlens.models import tiny_tokenizer
    >>> check_epie("no/such/folder", tiny_tokenizer())
    Traceback (most recent call last):
    ...
    FileNotFoundError: EPIE folder not found: no/such/folder
    """
    reports = {}
    for split in splits:
        corpus = load_epie(root, split)
        aligned = align(corpus, tokenizer, on_error="skip")
        reports[split] = alignment_report(corpus, aligned, tokenizer=tokenizer)
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    from transformers import AutoTokenizer

    parser = argparse.ArgumentParser(prog="python -m idiomlens.data.check_epie")
    parser.add_argument("root", help="EPIE folder (Formal_Idioms_Corpus/, Static_Idioms_Corpus/)")
    parser.add_argument("tokenizer", help="local folder of a fast Hugging Face tokenizer")
    parser.add_argument("--splits", nargs="+", default=["formal", "static", "trans"])
    parser.add_argument("--min-clean", type=float, default=0.995)
    parser.add_argument("--show", type=int, default=5, help="unclean examples to list")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.splits) - set(EPIE_SPLITS))
    if unknown:
        parser.error(f"unknown split(s) {unknown}; valid: {', '.join(EPIE_SPLITS)}")
    tok = AutoTokenizer.from_pretrained(args.tokenizer, local_files_only=True, use_fast=True)
    ok = True
    for split, df in check_epie(args.root, tok, args.splits).items():
        frac = df.attrs["clean_fraction"]
        ok &= frac >= args.min_clean
        print(f"{split:15s} n={len(df):6d} aligned={int(df['aligned'].sum()):6d} clean={frac:.4f}")
        cols = ["id", "idiom", "span_text", "extra_chars", "reason"]
        bad = df.loc[~df["clean"], cols].head(args.show)
        if len(bad):
            print(bad.to_string(index=False))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
