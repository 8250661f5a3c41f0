"""models.unembed (the model's head, one home) and engine.capture against TransformerLens."""

from __future__ import annotations

import pytest
import torch

from idiomlens.engine import capture
from idiomlens.models import tiny_model
from idiomlens.models.unembed import final_norm, unembed, unembed_columns

CONFIGS = {
    "ln": dict(seed=0),
    "rms": dict(normalization_type="RMS", seed=1),
    "no_norm": dict(normalization_type=None, seed=2),
    "soft_cap": dict(seed=3),
}
TOKENS = torch.tensor([[0, 5, 6, 7, 8], [0, 9, 10, 11, 12]])


@pytest.mark.parametrize("name", list(CONFIGS))
def test_head_equals_the_models_own_logits(name):
    model = tiny_model(**CONFIGS[name])
    if name == "soft_cap":
        model.cfg.output_logits_soft_cap = 0.5  # read by the forward at run time
    last = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    with torch.no_grad():
        logits, acts = capture(model, TOKENS, [last], logits=True)
        want = model(TOKENS)
        got = unembed(model, final_norm(model, acts[last]))
        buffer = torch.empty_like(want)
        in_place = unembed(model, final_norm(model, acts[last]), out=buffer)
    torch.testing.assert_close(logits, want, atol=0, rtol=0)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert in_place.data_ptr() == buffer.data_ptr()
    torch.testing.assert_close(in_place, want, atol=1e-5, rtol=1e-5)
    if name != "soft_cap":  # columns are the uncapped logits
        targets, distractors = torch.roll(TOKENS, -1, 1), TOKENS
        cols = unembed_columns(model, final_norm(model, acts[last]), targets, distractors)
        ref = want.gather(-1, targets[..., None]) - want.gather(-1, distractors[..., None])
        torch.testing.assert_close(cols, ref[..., 0], atol=1e-4, rtol=1e-5)


def test_capture_equals_run_with_cache_and_stops_early(model):
    names = ["blocks.0.attn.hook_pattern", "blocks.0.attn.hook_z"]
    _, cache = model.run_with_cache(TOKENS, names_filter=names)
    capture(model, TOKENS, names)  # the first use records the hooks' firing order
    fired = []
    handle = model.blocks[1].attn.hook_z.register_forward_hook(lambda *a: fired.append(1))
    try:
        out, acts = capture(model, TOKENS, names[::-1])
    finally:
        handle.remove()
    assert out is None and fired == []  # nothing after blocks.0.attn.hook_z ran
    for n in names:
        torch.testing.assert_close(acts[n], cache[n], atol=0, rtol=0)
