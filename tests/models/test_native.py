"""Saving and loading HookedTransformers as self-contained folders."""

from __future__ import annotations

import pytest
import torch

from idiomlens.models import load_model, tiny_model
from idiomlens.models.native import load_hooked, save_hooked


@pytest.mark.parametrize("pos", ["standard", "rotary"])
def test_save_load_roundtrip_is_exact(tmp_path, pos):
    model = tiny_model(positional_embedding_type=pos, seed=3)
    folder = save_hooked(model, tmp_path / "m")
    back = load_model(folder)
    tokens = torch.tensor([[0, 11, 42, 7, 99]])
    assert torch.equal(model(tokens), back(tokens))
    assert (
        back.tokenizer("spilled", add_special_tokens=False)["input_ids"]
        == model.tokenizer("spilled", add_special_tokens=False)["input_ids"]
    )
    assert model.cfg.device == "cpu"  # saving must not mutate the live config


def test_load_hooked_missing_folder_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_hooked(tmp_path / "nowhere")
