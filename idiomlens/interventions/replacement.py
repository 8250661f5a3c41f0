"""Replace the last idiom word with its paraphrase's word or a random word.

For each example, the last idiom word ``w`` (METHODS.md, "Ablation": the last
whitespace-delimited word of the span) is replaced by ``r``:

- ``"paraphrase"``: the last word of the paraphrase's span, the paraphrase being the
  example of ``partners`` (default: the corpus itself) whose ``meta["pair"]`` is this
  example's id (the demo corpus's ``para-NNNN`` -> ``fig-NNNN`` links);
- ``"random"``: a last idiom word of another example of the corpus (not ``w``), chosen
  by ``sha256(f"{seed}:{id}")`` among the corpus's distinct last words (so it depends
  on the id, the seed and that word pool, not on the order of the examples).

Examples without a paraphrase (or a different word to draw) are left out (logged).
Per example, from one forward of the original and one of the replaced sentence:

- ``loss_diff`` = replaced - original mean next-token loss over the sentence;
- ``logit_diff`` = logit of ``t_1`` (``w``'s first token) - logit of the replaced
  sentence's token at the same position (``" r"``'s first token, which may be a lone
  space when the vocabulary lacks ``" r"``), at the last prompt position of the
  original sentence (the two prompts are equal, checked);
- ``cosine`` = cosine similarity of the two sentences' final residual streams (last
  block's ``hook_resid_post``) at their last real token.

Both forwards run on :func:`idiomlens.engine.collect`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from .._io import Result
from ..data.batching import Batch
from ..data.example import IdiomExample
from ..engine import Collector, Site, collect, prepare, run_meta
from .metrics import next_token_stats, sentence_loss_mask, word_spans

__all__ = ["ReplacementResult", "replace_last_word", "replaced_example", "REPLACEMENTS"]

log = logging.getLogger(__name__)

REPLACEMENTS = ("paraphrase", "random")
_LAST_WORD = re.compile(r"\S+$")


def _last_word(text: str, span: tuple[int, int]) -> tuple[int, int]:
    a, b = span
    idiom = text[a:b].rstrip()
    m = _LAST_WORD.search(idiom)
    if m is None:
        raise ValueError(f"the idiom span {span} of {text!r} has no word")
    return a + m.start(), a + len(idiom)


def replaced_example(example: IdiomExample, word: str) -> IdiomExample:
    """``example`` with its last idiom word replaced by ``word`` (span adjusted).

    >>> ex = IdiomExample("a", "He spilled the beans today.", (3, 20))
    >>> new = replaced_example(ex, "secret")
    >>> new.text, new.text[new.span[0]:new.span[1]]
    ('He spilled the secret today.', 'spilled the secret')
    """
    wa, wb = _last_word(example.text, example.span)
    text = example.text[:wa] + word + example.text[wb:]
    meta = {**example.meta, "replaced": example.text[wa:wb], "replacement": word}
    return IdiomExample(example.id, text, (example.span[0], wa + len(word)), example.label, meta)


@dataclass
class ReplacementResult(Result):
    """Per-example effect of replacing the last idiom word (see the module docstring)."""

    ids: tuple[str, ...]
    loss_diff: Float[Tensor, " example"]
    logit_diff: Float[Tensor, " example"]
    cosine: Float[Tensor, " example"]
    words: tuple[str, ...] = ()
    replacements: tuple[str, ...] = ()
    replacement: str = "paraphrase"
    meta: dict[str, Any] = field(default_factory=dict)

    per_example: ClassVar[tuple[str, ...]] = ("loss_diff", "logit_diff", "cosine")

    @classmethod
    def concat(cls, parts: list[ReplacementResult]) -> ReplacementResult:
        merged = super().concat(parts)
        merged.words = tuple(w for p in parts for w in p.words)
        merged.replacements = tuple(w for p in parts for w in p.replacements)
        return merged

    def summary(self) -> dict[str, float]:
        """Means over examples."""
        return {
            "replacement": self.replacement,
            "n": len(self.ids),
            "loss_diff": float(self.loss_diff.mean()),
            "logit_diff": float(self.logit_diff.mean()),
            "cosine": float(self.cosine.mean()),
        }

    def to_dataframe(self) -> Any:
        """One row per example: ``id, word, replacement, loss_diff, logit_diff, cosine``."""
        import pandas as pd

        return pd.DataFrame(
            {
                "id": list(self.ids),
                "word": list(self.words),
                "replacement": list(self.replacements),
                "loss_diff": self.loss_diff.tolist(),
                "logit_diff": self.logit_diff.tolist(),
                "cosine": self.cosine.tolist(),
            }
        )

    def plot(self, other: ReplacementResult | None = None, **kwargs: Any) -> Any:
        """Distributions of the three effects (:mod:`idiomlens.viz.followups`)."""
        from ..viz.followups import plot_replacement

        return plot_replacement([self] if other is None else [self, other], **kwargs)


def _choose(examples: list[IdiomExample], replacement: str, partners: list[Any], seed: int):
    words = [ex.text[slice(*_last_word(ex.text, ex.span))] for ex in examples]
    if replacement == "paraphrase":
        by_pair = {p.meta.get("pair"): p for p in partners if p.meta.get("pair")}
        chosen = [
            by_pair[ex.id].text[slice(*_last_word(by_pair[ex.id].text, by_pair[ex.id].span))]
            if ex.id in by_pair
            else None
            for ex in examples
        ]
    else:
        pool = sorted({w for w in words})
        chosen = []
        for ex, w in zip(examples, words, strict=True):
            options = [p for p in pool if p != w]
            digest = hashlib.sha256(f"{seed}:{ex.id}".encode()).digest()
            chosen.append(
                options[int.from_bytes(digest[:8], "big") % len(options)] if options else None
            )
    keep = [i for i, r in enumerate(chosen) if r is not None and r != words[i]]
    if len(keep) < len(examples):
        log.info(
            "replace_last_word: %d of %d examples have no %s word",
            len(examples) - len(keep),
            len(examples),
            replacement,
        )
    if not keep:
        raise ValueError(f"replace_last_word: no example has a {replacement} replacement word")
    return keep, words, chosen


def _first_replaced(orig: Any, repl: Any, k1: int) -> int:
    """The replaced sentence's token at ``k_1`` (its prompt must equal the original's)."""
    if orig.tokens[:k1] != repl.tokens[:k1] or len(repl.tokens) <= k1:
        raise ValueError(f"example {orig.id!r}: the prompt tokenises differently after replacement")
    return repl.tokens[k1]


def _collector(spans: Tensor, other_first: Tensor | None, n_layers: int) -> Collector:
    """Loss, final residual at the last token and (with ``other_first``) the logit diff."""

    def setup(batch: Batch) -> dict[str, Any]:
        return {}

    def read_final(resid: Tensor, batch: Batch, state: dict) -> None:
        rows = torch.arange(batch.size, device=resid.device)
        state["final"] = resid[rows, batch.offsets + batch.lengths - 1].float()

    def finish(batch: Batch, state: dict, logits: Tensor) -> dict[str, Tensor]:
        logprob, _ = next_token_stats(logits, batch.tokens)
        mask = sentence_loss_mask(batch)
        out = {"final": state["final"], "loss": -(logprob * mask).sum(1) / mask.sum(1).clamp(min=1)}
        if other_first is not None:
            idx = batch.indices.cpu()
            k1 = spans[idx, 0].to(logits.device) + batch.offsets
            rows = torch.arange(batch.size, device=logits.device)
            last = logits[rows, k1 - 1].float()
            t1, r1 = batch.tokens[rows, k1], other_first[idx].to(logits.device)
            out["logit_diff"] = (
                last.gather(-1, t1[:, None])[:, 0] - last.gather(-1, r1[:, None])[:, 0]
            )
        return out

    return Collector(
        sites=[Site(f"blocks.{n_layers - 1}.hook_resid_post", read_final)],
        setup=setup,
        finish=finish,
        logits=True,
        desc="replace last word",
    )


def replace_last_word(
    model: Any,
    corpus: Any,
    *,
    replacement: str = "paraphrase",
    partners: Any = None,
    seed: int = 0,
    batch_tokens: int | None = None,
    progress: bool = True,
) -> ReplacementResult:
    """Effect of replacing the last idiom word (see the module docstring).

    Args:
        model: a ``HookedTransformer``.
        corpus: the sentences (``IdiomCorpus``); with ``"paraphrase"`` only those with a
            partner are used.
        replacement: ``"paraphrase"`` or ``"random"``.
        partners: where paraphrases are looked up (``meta["pair"] == id``); default ``corpus``.
        seed: seed of the random word choice.
        batch_tokens, progress: as everywhere.
    """
    if replacement not in REPLACEMENTS:
        raise ValueError(f"replacement must be one of {REPLACEMENTS}, got {replacement!r}")
    examples = list(corpus)
    keep, words, chosen = _choose(examples, replacement, list(partners or examples), seed)
    originals = [examples[i] for i in keep]
    replaced = [replaced_example(examples[i], chosen[i]) for i in keep]
    al_orig = prepare(model, originals, what="replace_last_word")
    al_repl = prepare(model, replaced, what="replace_last_word")
    spans = word_spans(al_orig, originals)
    first_r = torch.tensor(
        [
            _first_replaced(a, b, int(k1))
            for a, b, k1 in zip(al_orig, al_repl, spans[:, 0], strict=True)
        ]
    )
    n_layers = model.cfg.n_layers
    kw = {"batch_tokens": batch_tokens, "progress": progress}
    orig = collect(model, al_orig, _collector(spans, first_r, n_layers), **kw)
    repl = collect(model, al_repl, _collector(spans, None, n_layers), **kw)
    cosine = torch.nn.functional.cosine_similarity(orig["final"], repl["final"], dim=-1)
    return ReplacementResult(
        ids=orig.ids,
        loss_diff=repl["loss"] - orig["loss"],
        logit_diff=orig["logit_diff"],
        cosine=cosine,
        words=tuple(words[i] for i in keep),
        replacements=tuple(chosen[i] for i in keep),
        replacement=replacement,
        meta=run_meta(
            model, al_orig, analysis="replace_last_word", replacement=replacement, seed=seed
        ),
    )
