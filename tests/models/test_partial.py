"""run_hooks_until stops the forward after the requested hook and leaves the model clean."""

from __future__ import annotations

import pytest
import torch

from idiomlens.models import tiny_model
from idiomlens.models.partial import run_hooks_until


def test_stops_after_the_requested_hook_and_removes_hooks():
    model = tiny_model()
    seen: list[str] = []

    def record(act, hook):
        seen.append(hook.name)

    names = ["blocks.1.attn.hook_pattern", "blocks.1.attn.hook_z", "blocks.1.hook_mlp_out"]
    tokens = torch.tensor([[0, 5, 6, 7]])
    run_hooks_until(model, tokens, [(n, record) for n in names], "blocks.1.attn.hook_z")
    assert seen == names[:2]  # the MLP after the stop never ran
    assert all(not hp.fwd_hooks for hp in model.hook_dict.values())


def test_error_when_the_hook_is_never_reached():
    model = tiny_model()
    with pytest.raises(RuntimeError, match="never reached 'blocks.1.attn.hook_z'"):
        run_hooks_until(model, torch.tensor([[0, 5]]), [], "blocks.1.attn.hook_z", stop_at_layer=1)
    assert all(not hp.fwd_hooks for hp in model.hook_dict.values())
