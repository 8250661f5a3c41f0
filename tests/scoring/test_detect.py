"""detect_heads equals TransformerLens's detect_head on single prompts, and more."""

from __future__ import annotations

import pytest
import torch
from transformer_lens.head_detector import detect_head

from idiomlens.scoring import HeadDetection, detect_heads
from idiomlens.scoring.detect import MASKS

PROMPTS = [
    "The cat sat on the mat. The cat sat on the mat.",
    "He spilled the beans, and she spilled the beans too.",
    "Break a leg!",
]
TL_NAMES = ["previous_token_head", "duplicate_token_head", "induction_head"]


@pytest.mark.parametrize("name", TL_NAMES)
@pytest.mark.parametrize("exclude_bos", [False, True])
@pytest.mark.parametrize("exclude_current_token", [False, True])
def test_equals_transformer_lens_single_prompt(model, name, exclude_bos, exclude_current_token):
    opts = dict(exclude_bos=exclude_bos, exclude_current_token=exclude_current_token)
    for prompt in PROMPTS[:2]:
        want = detect_head(model, prompt, name, error_measure="mul", **opts)
        got = detect_heads(model, prompt, name, **opts)
        torch.testing.assert_close(got.scores[0], want.float(), atol=1e-6, rtol=0)


def test_every_prompt_counts(rotary_model):
    model = rotary_model
    # named pattern: TL averages over prompts itself
    want = detect_head(model, PROMPTS, "previous_token_head", error_measure="mul")
    got = detect_heads(model, PROMPTS, "previous_token_head", padding_side="left")
    torch.testing.assert_close(got.mean(), want.float(), atol=1e-6, rtol=0)
    # custom per-prompt tensors: TL 3.9 would score only the first prompt of a list
    masks = [torch.tril(torch.ones(n, n)) for n in (model.to_tokens(p).shape[1] for p in PROMPTS)]
    masks = [torch.tril(m, diagonal=-2) for m in masks]
    per_prompt = torch.stack(
        [detect_head(model, p, m, error_measure="mul") for p, m in zip(PROMPTS, masks, strict=True)]
    )
    got = detect_heads(model, PROMPTS, masks)
    assert got.pattern == "custom" and got.scores.shape == (3, 3, 2)
    torch.testing.assert_close(got.scores, per_prompt.float(), atol=1e-6, rtol=0)
    # a callable mask gives the same
    fn = lambda ex: torch.tril(torch.ones(len(ex), len(ex)), diagonal=-2).bool()  # noqa: E731
    torch.testing.assert_close(detect_heads(model, PROMPTS, fn).scores, got.scores)


def naive_mask_score(A, M, rows):
    T = len(A)
    marked = [q for q in range(T) if any(M[q])]
    qs = marked if rows == "marked" else range(T)
    num = sum(A[q][k] * M[q][k] for q in qs for k in range(T))
    den = sum(A[q][k] for q in qs for k in range(T))
    return num / den if den > 0 else 0.0


@pytest.mark.parametrize("name", ["idiom_to_idiom", "literal_to_idiom", "idiom_to_literal"])
@pytest.mark.parametrize("rows", ["all", "marked"])
def test_idiom_masks_match_naive(model, edge_aligned, name, rows):
    got = detect_heads(model, edge_aligned, name, rows=rows, padding_side="left", batch_tokens=80)
    assert got.ids == tuple(a.id for a in edge_aligned)
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(2)]
    for i, ex in enumerate(edge_aligned):
        _, cache = model.run_with_cache(torch.tensor([ex.tokens]), names_filter=names)
        s, e = ex.span
        I = set(range(s, e + 1))  # noqa: E741
        L = set(range(ex.p0, len(ex))) - I
        src, dst = {
            "idiom_to_idiom": (I, I),
            "literal_to_idiom": (L, I),
            "idiom_to_literal": (I, L),
        }[name]
        M = [
            [int(q in src and k in dst and k <= q) for k in range(len(ex))] for q in range(len(ex))
        ]
        for layer in range(2):
            for h in range(4):
                A = cache[names[layer]][0, h].tolist()
                want = naive_mask_score(A, M, rows)
                assert abs(got.scores[i, layer, h].item() - want) < 1e-5, (ex.id, layer, h)


def test_save_load_and_errors(model, edge_aligned, tmp_path):
    det = detect_heads(model, edge_aligned, "induction")
    back = HeadDetection.load(det.save(tmp_path / "det"))
    assert back.ids == det.ids and back.pattern == "induction" and back.layers == det.layers
    torch.testing.assert_close(back.scores, det.scores)
    with pytest.raises(ValueError, match="unknown pattern"):
        detect_heads(model, edge_aligned, "nonsense")
    with pytest.raises(ValueError, match="idiom spans"):
        detect_heads(model, PROMPTS, "idiom_to_idiom")
    bad = lambda ex: torch.ones(3, 3)  # noqa: E731
    with pytest.raises(ValueError, match=r"example '[\w-]+': mask shape"):
        detect_heads(model, edge_aligned, bad)
    assert set(MASKS) >= {"previous_token", "duplicate_token", "induction"}


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("batch_tokens", [1, 10**6])
def test_batch_equals_one_by_one(model, edge_aligned, padding_side, batch_tokens):
    """Any batching and padding side gives each example's own single-example scores."""
    fn = lambda ex: torch.tril(torch.ones(len(ex), len(ex)), diagonal=-1).bool()  # noqa: E731
    for pattern in ("idiom_to_literal", "induction", fn):
        got = detect_heads(
            model, edge_aligned, pattern, batch_tokens=batch_tokens, padding_side=padding_side
        )
        single = HeadDetection.concat([detect_heads(model, [a], pattern) for a in edge_aligned])
        assert got.ids == single.ids == tuple(a.id for a in edge_aligned)
        torch.testing.assert_close(got.scores, single.scores, atol=1e-6, rtol=0)
    assert got.meta["padding_side"] == padding_side and got.meta["n_examples"] == len(edge_aligned)
