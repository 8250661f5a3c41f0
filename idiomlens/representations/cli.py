"""``idiomlens extract``: representations of a corpus, per layer, into a folder.

::

    idiomlens extract --model CKPT --corpus sentences.jsonl --site norm --pool last --out reps/
    idiomlens extract --model CKPT --texts prompts.jsonl --site norm --pool last --out reps/

A checkpoint or model name is loaded with raw weights (``NO_PROCESSING``, so vectors
match Hugging Face) unless ``--processed``; a saved idiomlens folder keeps its weights. The run is chunked, cached and resumable in ``--out``
(rerun the same command to resume or reuse); ``Representations.load(OUT)`` reads it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["COMMAND", "add_arguments", "run"]

COMMAND = ("extract", "per-layer representations of one site and pool (Representations)")

_MODEL_DTYPES = ("float32", "float16", "bfloat16", "float64")
_STORAGE = ("float32", "bfloat16", "float16")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``idiomlens extract`` (choices come from the library's tables)."""
    from .names import POOLS, SITES  # no torch

    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--corpus", type=Path, help="an idiom corpus: JSONL / CSV file or EPIE folder")
    src.add_argument(
        "--texts", type=Path, help="labelled texts: JSONL / CSV or a saved Dataset folder"
    )
    parser.add_argument("--model", required=True, help="any load_model source")
    parser.add_argument(
        "--out", required=True, type=Path, help="result folder (reused and resumed)"
    )
    parser.add_argument("--split", help="EPIE split (with --corpus on an EPIE folder)")
    parser.add_argument(
        "--text-field", default="text", help="text column of --texts (default text)"
    )
    parser.add_argument("--id-field", default="id", help="id column of --texts (default id)")
    parser.add_argument("--site", choices=list(SITES), default="resid_post")
    parser.add_argument("--pool", choices=list(POOLS), default="last")
    parser.add_argument("--layers", type=int, nargs="+", help="only these layers (default all)")
    parser.add_argument("--average-duplicates", action="store_true", help="with --pool tokens")
    parser.add_argument("--dtype", choices=_STORAGE, default="float32", help="storage dtype")
    parser.add_argument(
        "--model-dtype", choices=_MODEL_DTYPES, help="model dtype (default as saved)"
    )
    parser.add_argument("--processed", action="store_true",
                        help="fold/centre weights as TransformerLens does (default: raw weights)")  # fmt: skip
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default cpu)")
    parser.add_argument("--batch-tokens", type=int, help="padded tokens per forward pass")
    parser.add_argument("--chunk-size", type=int, default=256, help="examples per saved chunk")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--no-resume", action="store_true", help="recompute even if OUT holds this run"
    )
    parser.add_argument("-v", "--verbose", action="store_true")


def _corpus(args: argparse.Namespace) -> Any:
    from idiomlens.data import load_corpus, load_texts

    if args.texts is not None:
        return load_texts(args.texts, text_field=args.text_field, id_field=args.id_field)
    return load_corpus(args.corpus, split=args.split)


def _saved_as_is(source: str) -> bool:
    from idiomlens.models.load import DEMO_MODEL_NAME
    from idiomlens.models.native import is_hooked_dir

    return source == DEMO_MODEL_NAME or (Path(source).is_dir() and is_hooked_dir(Path(source)))


def run(args: argparse.Namespace) -> int:
    """Run ``idiomlens extract``; bad input raises the CLI's one-line user error."""
    from idiomlens.cli import UserError
    from idiomlens.data import AlignmentError
    from idiomlens.models import DEFAULT_PROCESSING, NO_PROCESSING, load_model

    from .extraction import extract

    for name in ("batch_tokens", "chunk_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be a positive integer")
    try:
        corpus = _corpus(args)
    except (OSError, ValueError) as err:
        raise UserError(str(err)) from None
    processing = DEFAULT_PROCESSING if args.processed else NO_PROCESSING
    if _saved_as_is(args.model):  # a saved HookedTransformer keeps the weights it was saved with
        processing = None
    try:
        model = load_model(
            args.model, device=args.device, dtype=args.model_dtype, processing=processing
        )
    except (OSError, ValueError, NotImplementedError, KeyError) as err:
        raise UserError(f"cannot load model {args.model!r}: {err}") from None
    try:
        reps = extract(model, corpus, site=args.site, layers=args.layers, pool=args.pool,
                       average_duplicates=args.average_duplicates, out=args.out, dtype=args.dtype,
                       batch_tokens=args.batch_tokens, chunk_size=args.chunk_size,
                       resume=not args.no_resume, progress=not args.no_progress)  # fmt: skip
    except (AlignmentError, ValueError, TypeError) as err:
        raise UserError(f"{args.texts or args.corpus}: {err}") from None
    print(f"Representations ({reps.site}/{reps.pool}, layers {list(reps.layers)}, "
          f"{reps.n_rows} rows) in {args.out}")  # fmt: skip
    return 0
