"""Run specs: canonical parameters, stable keys, and the weights fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pytest
import torch

from idiomlens.models import tiny_model
from idiomlens.runs import RunSpec, canonicalize, model_identity, weights_fingerprint


def spec(**overrides):
    base = dict(
        analysis="score", params={"kind": "idiom", "layers": (0, 1)}, model={"weights_sha256": "w"},
        corpus_sha256="c", n_examples=3, library_version="0.1.0",
    )  # fmt: skip
    return RunSpec(**{**base, **overrides})


def reference_fingerprint(model) -> str:
    """Independent reference: hash of every tensor's header and bytes, all in one go."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(json.dumps([name, list(t.shape), str(t.dtype)]).encode())
        h.update(t.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def test_key_ignores_spelling_but_not_content():
    assert spec().key == spec(params={"layers": [0, 1], "kind": "idiom"}).key
    assert spec().key == RunSpec.from_dict(json.loads(json.dumps(spec().to_dict()))).key
    assert spec().key == spec(model={"weights_sha256": "w", "source": "/elsewhere"}).key
    for changed in (
        spec(params={"kind": "literal", "layers": (0, 1)}),
        spec(model={"weights_sha256": "v"}),
        spec(corpus_sha256="d"),
        spec(library_version="0.2.0"),
        spec(analysis="dla"),
    ):
        assert changed.key != spec().key


def test_canonicalize_rejects_what_json_cannot_hold():
    @dataclass(frozen=True)
    class Cfg:
        k: int
        dtype: torch.dtype

    assert canonicalize({"c": Cfg(2, torch.float16)}) == {
        "c": {"__type__": "Cfg", "dtype": "torch.float16", "k": 2}
    }
    with pytest.raises(TypeError, match=r"params\.metric"):
        canonicalize({"metric": lambda x: x})
    with pytest.raises(TypeError, match="non-finite"):
        canonicalize({"eps": float("nan")})


def test_weights_fingerprint_matches_reference_and_sees_every_change():
    model = tiny_model(seed=0)
    assert weights_fingerprint(model) == reference_fingerprint(model)
    assert weights_fingerprint(tiny_model(seed=0)) == weights_fingerprint(model)
    assert weights_fingerprint(tiny_model(seed=1)) != weights_fingerprint(model)
    before = weights_fingerprint(model)
    with torch.no_grad():  # in place: the cached value must not be served
        model.blocks[0].mlp.W_in.view(-1)[7] += 1e-6
    assert weights_fingerprint(model) != before
    assert weights_fingerprint(model) == reference_fingerprint(model)
    assert weights_fingerprint(tiny_model(seed=0).to(torch.float64)) != before


def test_weights_fingerprint_streams_large_tensors_in_slices(monkeypatch):
    import idiomlens.runs.spec as spec_module

    model = tiny_model(seed=0)
    monkeypatch.setattr(spec_module, "_SLICE_BYTES", 100)  # many slices per tensor
    spec_module._fingerprint_cache.clear()
    assert weights_fingerprint(model) == reference_fingerprint(model)


def test_model_identity_sees_the_tokenizer_and_not_the_source():
    model = tiny_model(seed=0)
    a = model_identity(model, source="/a")
    assert a["weights_sha256"] == weights_fingerprint(model)
    other_tok = tiny_model(seed=0)
    from idiomlens.models import tiny_tokenizer

    other_tok.tokenizer = tiny_tokenizer(vocab_size=290)
    b = model_identity(other_tok, source="/b")
    assert (
        a["config_sha256"] == b["config_sha256"] and a["tokenizer_sha256"] != b["tokenizer_sha256"]
    )


def test_same_weights_in_differently_named_folders_share_a_key(tmp_path):
    from idiomlens.models import load_model, save_hooked

    model = tiny_model(seed=4)
    a = load_model(save_hooked(model, tmp_path / "base-run-1"))
    b = load_model(save_hooked(model, tmp_path / "copy"))
    b.cfg.model_name = "renamed"
    ids = [model_identity(m, source=str(p)) for m, p in ((a, "x"), (b, "y"))]
    assert ids[0]["config_sha256"] == ids[1]["config_sha256"]
    assert spec(model=ids[0]).key == spec(model=ids[1]).key
    changed = tiny_model(seed=5)
    assert spec(model=model_identity(changed)).key != spec(model=ids[0]).key
