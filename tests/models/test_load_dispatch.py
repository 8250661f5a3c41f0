"""``load_model`` dispatch, its errors, the TransformerLens-name path and model records."""

from __future__ import annotations

import socket

import pytest
import torch
from transformers import BertConfig

import idiomlens
from idiomlens.models import (
    DEFAULT_PROCESSING,
    NO_PROCESSING,
    SUPPORTED_ARCHITECTURES,
    load_model,
    model_info,
    save_hooked,
    tiny_model,
)
from idiomlens.models import load as load_module
from idiomlens.models.load import resolve_device, resolve_dtype
from idiomlens.runs.spec import weights_fingerprint

from .conftest import build_hf, save_checkpoint


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("load_model tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("source", ["foo", "EleutherAI/pythia-does-not-exist", "./no/such/dir"])
def test_unknown_name_or_missing_dir_is_one_clear_error(source):
    with pytest.raises(ValueError, match="^unknown model .*not a TransformerLens model name"):
        load_model(source)


@pytest.mark.usefixtures("no_network")
def test_directory_without_config(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(FileNotFoundError, match="no config.json.*adapter_config.json"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="is a file"):
        load_model(tmp_path / "notes.txt")


@pytest.mark.usefixtures("no_network")
def test_unsupported_architecture_lists_supported_ones(tmp_path):
    BertConfig(architectures=["BertForMaskedLM"]).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="'BertForMaskedLM' is not supported") as err:
        load_model(tmp_path)  # fails on the config, before looking for weights
    assert all(arch in str(err.value) for arch in SUPPORTED_ARCHITECTURES)


def test_checkpoint_without_weights_names_the_folder(tmp_path):
    build_hf("gpt2").config.save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no weights"):
        load_model(tmp_path)


def test_hooked_transformer_passes_through():
    model = tiny_model(seed=1)
    assert load_model(model) is model
    assert model_info(model).kind == "in_memory" and model_info(model).processing is None
    moved = load_model(model, dtype="float64", device="cpu")
    assert moved is model and model.cfg.dtype == torch.float64
    assert model.W_Q.dtype == torch.float64
    with pytest.raises(ValueError, match="processing="):
        load_model(model, processing=NO_PROCESSING)


def test_source_type_is_checked():
    with pytest.raises(TypeError, match="int"):
        load_model(3)


def test_saved_folder_and_demo_name(tmp_path, monkeypatch):
    folder = save_hooked(tiny_model(seed=2), tmp_path / "saved")
    model = load_model(folder)
    assert model_info(model).kind == "hooked_dir"
    with pytest.raises(ValueError, match="processing="):
        load_model(folder, processing=DEFAULT_PROCESSING)
    monkeypatch.setattr(load_module, "DEMO_MODEL_DIR", folder)
    demo = load_model(idiomlens.models.DEMO_MODEL_NAME)
    assert model_info(demo).kind == "demo"
    assert torch.equal(demo.W_E, model.W_E)


def test_transformer_lens_names_go_to_from_pretrained(monkeypatch):
    calls = []

    def fake_from_pretrained(name, **kwargs):
        calls.append((name, kwargs))
        return tiny_model()

    monkeypatch.setattr(load_module.HookedTransformer, "from_pretrained", fake_from_pretrained)
    model = load_model("GPT2-Small", dtype="bf16")  # an alias, any case
    [(name, kwargs)] = calls
    assert name == "gpt2"
    assert kwargs["dtype"] == torch.bfloat16 and kwargs["device"] == "cpu"
    assert {k: kwargs[k] for k in DEFAULT_PROCESSING.as_kwargs()} == DEFAULT_PROCESSING.as_kwargs()
    info = model_info(model)
    assert info.kind == "transformer_lens" and info.source == "GPT2-Small"
    load_model("pythia-160m", processing=NO_PROCESSING, n_ctx=128)
    name, kwargs = calls[-1]
    assert name == "EleutherAI/pythia-160m"
    assert kwargs["fold_ln"] is False and kwargs["n_ctx"] == 128


def test_local_directory_wins_over_a_model_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_hooked(tiny_model(seed=4), tmp_path / "gpt2")
    assert model_info(load_model("gpt2")).kind == "hooked_dir"


def test_dtype_and_device_resolution():
    assert resolve_dtype("float32") is torch.float32
    assert resolve_dtype("torch.float16") is torch.float16
    assert resolve_dtype(torch.bfloat16) is torch.bfloat16
    assert resolve_dtype(None) is None
    with pytest.raises(ValueError, match="unknown dtype 'int8'.*bfloat16"):
        resolve_dtype("int8")
    assert resolve_device(None) == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(torch.device("cpu")) == "cpu"


def test_weights_fingerprint_tracks_weights(tmp_path):
    hf = build_hf("llama-gqa", seed=11)
    first = save_checkpoint(hf, tmp_path / "a")
    with torch.no_grad():
        hf.model.layers[1].mlp.down_proj.weight[3, 5] += 0.5
    second = save_checkpoint(hf, tmp_path / "b")
    model = load_model(first)
    fingerprint = weights_fingerprint(model)
    assert weights_fingerprint(load_model(first)) == fingerprint  # stable across loads
    assert weights_fingerprint(load_model(second)) != fingerprint  # one weight changed
    original = model.blocks[0].attn.W_Q[0, 0, 0].item()
    with torch.no_grad():
        model.blocks[0].attn.W_Q[0, 0, 0] = original + 1.0
    assert weights_fingerprint(model) != fingerprint
    with torch.no_grad():
        model.blocks[0].attn.W_Q[0, 0, 0] = original
    assert weights_fingerprint(model) == fingerprint


def test_saved_folder_keeps_its_dtype_unless_asked(tmp_path):
    folder = save_hooked(tiny_model(dtype=torch.bfloat16), tmp_path / "bf16")
    assert load_model(folder).cfg.dtype == torch.bfloat16
    assert load_model(folder, dtype="float32").W_E.dtype == torch.float32
