"""``extract(..., out=DIR)``: streamed to disk through the run engine, equal to in memory,
reused, resumed after an interruption, never served a stale result."""

from __future__ import annotations

import logging

import pytest
import torch
from safetensors.torch import load_file

import idiomlens.representations.extraction as extract_module
from idiomlens.representations import Representations, extract
from idiomlens.representations.result import LAYER_FILE


@pytest.fixture
def spy(monkeypatch):
    """Count the chunks computed (and their sizes); optionally fail on the n-th one."""
    calls: list[int] = []
    real = extract_module._representations
    state = {"fail_at": None}

    def wrapped(model, aligned, *args, **kwargs):
        if state["fail_at"] is not None and len(calls) == state["fail_at"]:
            raise RuntimeError("killed")
        calls.append(len(aligned))
        return real(model, aligned, *args, **kwargs)

    monkeypatch.setattr(extract_module, "_representations", wrapped)
    return calls, state


def _same(a: Representations, b: Representations, exact: bool = True) -> None:
    """Same rows, labels and vectors: bit for bit, or (``exact=False``: batches of other
    sizes, whose products MKL may sum in another order) within float32 rounding."""
    assert a.layers == b.layers and a.ids == b.ids and a.labels == b.labels
    assert (a.site, a.pool) == (b.site, b.pool)
    tol = {"atol": 0, "rtol": 0} if exact else {"atol": 1e-6, "rtol": 1e-5}
    for layer in a.layers:
        assert a.vectors(layer).dtype == b.vectors(layer).dtype
        torch.testing.assert_close(a.vectors(layer), b.vectors(layer), **tol)
    for name in ("token_ids", "example_index", "positions"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None and y is None) or torch.equal(x, y)


@pytest.mark.parametrize(
    "pool, dtype, average",
    [
        ("last", torch.float32, False),
        ("tokens", torch.bfloat16, False),
        ("tokens", torch.float32, True),
        ("literal", torch.float16, False),
    ],  # fmt: skip
)
def test_streamed_equals_in_memory(model, corpus, tmp_path, spy, pool, dtype, average):
    calls, _ = spy
    kw = {
        "site": "norm",
        "pool": pool,
        "dtype": dtype,
        "average_duplicates": average,
        "progress": False,
    }
    disk = extract(model, corpus, out=tmp_path / "run", chunk_size=3, **kw)
    assert calls == [3, 3, 3, 1]  # one chunk at a time: memory bounded by chunk_size
    memory = extract(model, corpus, **kw)
    _same(disk, memory)
    loaded = Representations.load(tmp_path / "run")
    assert loaded._tensors == {}  # lazy: nothing read until asked
    _same(loaded, memory)
    for layer in memory.layers:  # one plain safetensors file per layer
        assert load_file(tmp_path / "run" / LAYER_FILE(layer))["vectors"].dtype == dtype
    assert loaded.meta["storage_dtype"] == str(dtype).removeprefix("torch.")


def test_storage_dtype_rounds_the_float32_vectors(model, corpus):
    full = extract(model, corpus, site="resid_post", layers=[1], progress=False)
    half = extract(model, corpus, site="resid_post", layers=[1], dtype="bf16", progress=False)
    assert torch.equal(half.vectors(1), full.vectors(1).to(torch.bfloat16))


def test_average_duplicates_equals_a_naive_average(model, corpus):
    rows = extract(model, corpus, site="resid_pre", layers=[1], pool="tokens", progress=False)
    avg = extract(model, corpus, site="resid_pre", layers=[1], pool="tokens",
                  average_duplicates=True, progress=False)  # fmt: skip
    order = list(dict.fromkeys(rows.token_ids.tolist()))
    assert avg.token_ids.tolist() == order
    v = rows.vectors(1)
    for g, tok in enumerate(order):
        mask = rows.token_ids == tok
        torch.testing.assert_close(avg.vectors(1)[g], v[mask].mean(0), atol=1e-6, rtol=1e-6)
        assert avg.labels["count"][g] == int(mask.sum())
        labels = {rows.labels["label"][i] for i in mask.nonzero().flatten().tolist()}
        assert avg.labels["label"][g] == (labels.pop() if len(labels) == 1 else None)


def test_a_finished_run_is_reused(model, corpus, tmp_path, spy):
    calls, _ = spy
    first = extract(model, corpus, site="resid_pre", out=tmp_path, chunk_size=4, progress=False)
    n = len(calls)
    again = extract(model, corpus, site="resid_pre", out=tmp_path, chunk_size=4, progress=False)
    assert len(calls) == n  # nothing recomputed
    _same(first, again)


def test_resume_after_an_interruption(model, corpus, tmp_path, spy):
    calls, state = spy
    state["fail_at"] = 2
    with pytest.raises(RuntimeError, match="killed"):
        extract(
            model, corpus, site="mlp_out", pool="mean", out=tmp_path, chunk_size=3, progress=False
        )
    assert calls == [3, 3]
    state["fail_at"] = None
    resumed = extract(
        model, corpus, site="mlp_out", pool="mean", out=tmp_path, chunk_size=3, progress=False
    )
    assert calls == [3, 3, 3, 1]  # only the two missing chunks
    whole = extract(
        model, corpus, site="mlp_out", pool="mean", out=tmp_path / "whole", chunk_size=3, progress=False
    )  # fmt: skip
    _same(resumed, whole)  # as if never interrupted, bit for bit
    _same(resumed, extract(model, corpus, site="mlp_out", pool="mean", progress=False), exact=False)


def test_a_corrupted_chunk_is_recomputed(model, corpus, tmp_path, spy, caplog):
    calls, _ = spy
    extract(model, corpus, site="resid_pre", out=tmp_path, chunk_size=5, progress=False)
    (tmp_path / "chunks" / "chunk-000001" / LAYER_FILE(0)).write_bytes(b"garbage")
    (tmp_path / LAYER_FILE(0)).write_bytes(b"garbage")  # the assembled file too
    with caplog.at_level(logging.WARNING):
        got = extract(model, corpus, site="resid_pre", out=tmp_path, chunk_size=5, progress=False)
    assert calls == [5, 5, 5] and "corrupted" in caplog.text
    _same(got, extract(model, corpus, site="resid_pre", progress=False))


def test_other_parameters_replace_the_run(model, corpus, tmp_path, caplog):
    extract(model, corpus, site="resid_pre", layers=[0, 1], out=tmp_path, progress=False)
    with caplog.at_level(logging.WARNING):
        got = extract(model, corpus, site="resid_pre", layers=[1], out=tmp_path, progress=False)
    assert "different run" in caplog.text
    assert got.layers == (1,) and not (tmp_path / LAYER_FILE(0)).exists()
    other = extract(model, corpus[:4], site="resid_pre", layers=[1], out=tmp_path, progress=False)
    assert other.ids == corpus.ids[:4]  # another corpus is never served the old result
