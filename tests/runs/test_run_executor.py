"""The executor: chunking, resume after a crash, reuse, invalidation, corruption, OOM back-off."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from idiomlens.models import tiny_model
from idiomlens.runs import ResultStore, plan_chunks, run_analysis
from idiomlens.runs.executor import OutOfMemoryBudget

from .analyses import CALLS, Crash, MeanLogit, crashing, flaky_oom, mean_logit
from .conftest import small_corpus


def assert_same(a: MeanLogit, b: MeanLogit) -> None:
    assert a.ids == b.ids
    assert torch.equal(a.values, b.values) and torch.equal(a.maxima, b.maxima)


def test_plan_chunks_cover_corpus_once():
    for n, size in [(1, 1), (10, 3), (9, 3), (5, 100)]:
        plan = plan_chunks(n, size)
        covered = [i for _, s, e in plan for i in range(s, e)]
        assert covered == list(range(n))
        assert [c[0] for c in plan] == list(range(len(plan)))
    with pytest.raises(ValueError):
        plan_chunks(3, 0)


def test_chunked_equals_direct_call_in_corpus_order(model, runs_corpus, tmp_path):
    direct = mean_logit(model, runs_corpus)
    result = run_analysis(
        mean_logit, model, runs_corpus, out=tmp_path, chunk_size=4, progress=False
    )
    assert result.ids == runs_corpus.ids
    torch.testing.assert_close(result.values, direct.values, rtol=0, atol=1e-6)
    assert CALLS["mean_logit"] == 1 + 6  # direct call + ceil(23 / 4) chunks
    assert_same(MeanLogit.load(tmp_path), result)
    spec = json.loads((tmp_path / "spec.json").read_text())
    assert spec["spec"]["corpus_sha256"] == runs_corpus.content_hash()
    assert len(list((tmp_path / "chunks").iterdir())) == 6


def test_resume_after_crash_equals_uninterrupted(model, runs_corpus, tmp_path):
    reference = run_analysis(
        mean_logit, model, runs_corpus, out=tmp_path / "ref", chunk_size=4, progress=False
    )
    with pytest.raises(Crash):
        run_analysis(
            crashing(3), model, runs_corpus, out=tmp_path / "run", chunk_size=4, progress=False
        )
    store = ResultStore(tmp_path / "run")
    records, header = store.read_manifests(store.read_spec_key())
    assert len(records) == 3 and not header.get("complete")
    CALLS.clear()
    resumed = run_analysis(
        mean_logit, model, runs_corpus, out=tmp_path / "run", chunk_size=4, progress=False
    )
    assert CALLS["mean_logit"] == 3  # only the 6 - 3 missing chunks
    assert_same(resumed, reference)
    assert_same(MeanLogit.load(tmp_path / "run"), reference)


def test_finished_result_is_reused_without_calling(model, runs_corpus, tmp_path):
    first = run_analysis(mean_logit, model, runs_corpus, out=tmp_path, chunk_size=5, progress=False)
    CALLS.clear()
    again = run_analysis(mean_logit, model, runs_corpus, out=tmp_path, chunk_size=5, progress=False)
    assert CALLS["mean_logit"] == 0
    assert_same(again, first)
    # another chunk size is an execution setting: the finished result is still served
    run_analysis(mean_logit, model, runs_corpus, out=tmp_path, chunk_size=7, progress=False)
    assert CALLS["mean_logit"] == 0


@pytest.mark.parametrize("change", ["weights", "corpus", "params"])
def test_changed_inputs_are_recomputed(model, runs_corpus, tmp_path, caplog, change):
    run_analysis(mean_logit, model, runs_corpus, out=tmp_path, chunk_size=8, progress=False)
    other_model, corpus, params = model, runs_corpus, {"scale": 1.0}
    if change == "weights":
        other_model = tiny_model(n_layers=2, n_heads=4, seed=0)
        with torch.no_grad():
            other_model.blocks[1].attn.W_O[0, 0, 0] += 1e-3
    elif change == "corpus":
        corpus = small_corpus(23, prefix="other")
    else:
        params = {"scale": 2.0}
    CALLS.clear()
    with caplog.at_level(logging.WARNING, logger="idiomlens.runs"):
        result = run_analysis(
            mean_logit,
            other_model,
            corpus,
            out=tmp_path,
            params=params,
            chunk_size=8,
            progress=False,
        )
    assert CALLS["mean_logit"] == 3
    assert "different run" in caplog.text
    expected = mean_logit(other_model, corpus, **params)
    assert result.ids == corpus.ids
    torch.testing.assert_close(result.values, expected.values, rtol=0, atol=1e-6)
    assert len(list((tmp_path / "chunks").iterdir())) == 3  # old chunks removed


def test_same_weights_in_a_new_model_object_are_reused(model, runs_corpus, tmp_path):
    run_analysis(mean_logit, model, runs_corpus, out=tmp_path, progress=False)
    CALLS.clear()
    run_analysis(
        mean_logit,
        tiny_model(n_layers=2, n_heads=4, seed=0),
        runs_corpus,
        out=tmp_path,
        progress=False,
    )
    assert CALLS["mean_logit"] == 0


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_corrupted_chunk_is_detected_and_recomputed(model, runs_corpus, tmp_path, damage):
    reference = run_analysis(
        mean_logit, model, runs_corpus, out=tmp_path, chunk_size=4, progress=False
    )
    target = tmp_path / "chunks" / "chunk-000002" / "tensors.safetensors"
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        target.write_bytes(data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:])
    else:
        target.unlink()
    (tmp_path / "result.json").write_text("{}")  # the merged result is damaged too
    CALLS.clear()
    again = run_analysis(mean_logit, model, runs_corpus, out=tmp_path, chunk_size=4, progress=False)
    assert CALLS["mean_logit"] == 1
    assert_same(again, reference)


def test_leftovers_of_a_killed_writer_are_removed(model, runs_corpus, tmp_path):
    with pytest.raises(Crash):
        run_analysis(crashing(1), model, runs_corpus, out=tmp_path, chunk_size=10, progress=False)
    half_written = tmp_path / "chunks" / ".tmp-chunk-000001-999-abcdef12"
    half_written.mkdir()
    (half_written / "tensors.safetensors").write_bytes(b"partial")
    (tmp_path / ".manifest.json.x1y2.tmp").write_text("{")
    result = run_analysis(
        mean_logit, model, runs_corpus, out=tmp_path, chunk_size=10, progress=False
    )
    assert result.ids == runs_corpus.ids
    assert not half_written.exists() and not list(tmp_path.glob(".*.tmp"))


def test_resume_false_recomputes(model, runs_corpus, tmp_path):
    run_analysis(mean_logit, model, runs_corpus, out=tmp_path, chunk_size=10, progress=False)
    CALLS.clear()
    run_analysis(
        mean_logit, model, runs_corpus, out=tmp_path, chunk_size=10, progress=False, resume=False
    )
    assert CALLS["mean_logit"] == 3


def test_oom_halves_the_token_budget(model, runs_corpus, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="idiomlens.runs"):
        result = run_analysis(
            flaky_oom(1024),
            model,
            runs_corpus,
            out=tmp_path,
            chunk_size=10,
            batch_tokens=4096,
            progress=False,
        )
    # 4096 -> 2048 -> 1024 on the first chunk; the lower budget is kept for later chunks
    assert CALLS["oom_attempts"] == 3 + 2
    assert CALLS["budget=1024"] == 3
    assert "out of memory" in caplog.text
    torch.testing.assert_close(
        result.values, mean_logit(model, runs_corpus).values, rtol=0, atol=1e-6
    )


def test_oom_at_the_floor_fails_clearly(model, runs_corpus, tmp_path):
    with pytest.raises(OutOfMemoryBudget, match="batch_tokens=128"):
        run_analysis(
            flaky_oom(10), model, runs_corpus, out=tmp_path, batch_tokens=512, progress=False
        )


def test_unrelated_runtime_errors_are_not_retried(model, runs_corpus, tmp_path):
    def broken(model, corpus, *, batch_tokens=None):
        CALLS["broken"] += 1
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_analysis(broken, model, runs_corpus, out=tmp_path, progress=False)
    assert CALLS["broken"] == 1


def test_shard_jobs_then_merge_equal_single_run(model, runs_corpus, tmp_path):
    reference = run_analysis(
        mean_logit, model, runs_corpus, out=tmp_path / "ref", chunk_size=3, progress=False
    )
    for i in range(3):
        assert (
            run_analysis(
                mean_logit,
                model,
                runs_corpus,
                out=tmp_path / "arr",
                chunk_size=3,
                shard=(i, 3),
                progress=False,
            )
            is None
        )
    assert len(list((tmp_path / "arr").glob("manifest.shard-*.json"))) == 3
    damaged = tmp_path / "arr" / "chunks" / "chunk-000004" / "tensors.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:-8])  # shard 1's chunk, recomputed by the merge
    CALLS.clear()
    merged = run_analysis(
        mean_logit, model, runs_corpus, out=tmp_path / "arr", chunk_size=3, progress=False
    )
    assert CALLS["mean_logit"] == 1
    assert_same(merged, reference)
    assert not list((tmp_path / "arr").glob("manifest.shard-*.json"))
    store = ResultStore(tmp_path / "arr")
    records, header = store.read_manifests(store.read_spec_key())
    assert header["complete"] and store.valid_chunk(records, 4, 12, 15)


def test_shard_job_never_deletes_another_run(model, runs_corpus, tmp_path):
    from idiomlens.runs.store import StoreMismatch

    run_analysis(mean_logit, model, runs_corpus, out=tmp_path, progress=False)
    with pytest.raises(StoreMismatch):
        run_analysis(
            mean_logit,
            model,
            runs_corpus,
            out=tmp_path,
            params={"scale": 3.0},
            shard=(0, 2),
            progress=False,
        )


def test_oom_without_a_budget_starts_from_the_default(model, runs_corpus, tmp_path):
    result = run_analysis(flaky_oom(4096), model, runs_corpus, out=tmp_path, progress=False)
    # no budget given: first call uses the analysis default (None -> OOM), then 8192 // 2
    assert CALLS["oom_attempts"] == 2 and CALLS["budget=4096"] == 1
    assert result.ids == runs_corpus.ids
