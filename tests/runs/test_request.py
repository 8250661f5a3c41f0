"""Instant cache hits: a finished CLI run is answered by its input files' hashes, without
torch or the model, and never when weights, corpus or parameters changed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import idiomlens.cli as cli
from idiomlens.models import save_hooked, tiny_model
from idiomlens.runs.request import (
    FileHashCache,
    lookup,
    model_source_files,
    request_key,
    sha256_file,
)

from .conftest import small_corpus

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("request")
    model_dir = save_hooked(tiny_model(n_layers=2, n_heads=4, seed=0), root / "model")
    corpus = small_corpus(9).to_jsonl(root / "corpus.jsonl")
    return root, model_dir, corpus


def key(model, corpus, tmp_path, **kw):
    args = dict(analysis="score", params={"kind": "idiom"}, model_source=model, corpus=corpus)
    return request_key(**{**args, **kw}, cache=FileHashCache(tmp_path / "h.json"))


def test_hash_cache_rehashes_only_changed_files(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x" * 1000)
    cache = FileHashCache(tmp_path / "cache.json")
    assert cache.sha256(f) == sha256_file(f) and cache.hashed == 1
    assert cache.sha256(f) == sha256_file(f) and cache.hashed == 1
    again = FileHashCache(cache.save())
    again.sha256(f)
    assert again.hashed == 0  # a later process reads the stored hash
    st = f.stat()
    f.write_bytes(b"y" * 1000)  # same size, and the mtime put back: the ctime still moves
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert again.sha256(f) == sha256_file(f) and again.hashed == 1


def test_request_key_follows_the_inputs(files, tmp_path):
    root, model_dir, corpus = files
    base = key(model_dir, corpus, tmp_path)
    assert base is not None and base == key(model_dir, corpus, tmp_path)
    copy = shutil.copytree(model_dir, tmp_path / "elsewhere")
    assert key(copy, corpus, tmp_path) == base  # where the files live does not matter
    (copy / "hooked_config.json").write_text(
        (copy / "hooked_config.json").read_text().replace("}", ', "x": 1}', 1)
    )
    assert key(copy, corpus, tmp_path) != base
    other_weights = save_hooked(tiny_model(n_layers=2, n_heads=4, seed=1), tmp_path / "w")
    assert key(other_weights, corpus, tmp_path) != base
    other_corpus = small_corpus(9, prefix="o").to_jsonl(tmp_path / "c.jsonl")
    assert key(model_dir, other_corpus, tmp_path) != base
    assert key(model_dir, corpus, tmp_path, params={"kind": "literal"}) != base
    assert key(model_dir, corpus, tmp_path, dtype="float64") != base
    assert key(model_dir, corpus, tmp_path, split="formal") != base
    assert key(model_dir, corpus, tmp_path, analysis="dla") != base
    # names and missing paths have no local files: the full path runs
    assert model_source_files("pythia-1.4b") is None and key("gpt2", corpus, tmp_path) is None
    assert model_source_files("idiomlens-demo")[0] == "demo"


def test_hf_and_adapter_folders_are_identified_by_their_files(tmp_path):
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    (hf / "model.safetensors").write_bytes(b"w")
    (hf / "optimizer.pt").write_bytes(b"trainer state, never read by load_model")
    kind, found = model_source_files(hf)
    assert kind == "hf_checkpoint" and [p.name for p in found] == [
        "config.json",
        "model.safetensors",
    ]
    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(hf)}))
    kind, found = model_source_files(lora)
    assert kind == "peft_adapter" and len(found) == 3  # the adapter and its base
    (lora / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "gpt2"}))
    assert model_source_files(lora) is None


def _score(model_dir, corpus, out, *extra):
    argv = ["score", "--model", model_dir, "--corpus", corpus, "--out", out, "--no-progress"]
    return [str(a) for a in argv + list(extra)]


def test_rerun_is_served_without_loading_the_model(files, tmp_path, capsys, monkeypatch):
    _, model_dir, corpus = files
    out = tmp_path / "out"
    assert cli.main(_score(model_dir, corpus, out)) == 0
    first = capsys.readouterr().out
    assert (out / "requests.json").is_file()

    def no_model(args):
        raise AssertionError("the model was loaded for a finished run")

    monkeypatch.setattr(cli, "_load_model", no_model)
    assert cli.main(_score(model_dir, corpus, out)) == 0
    assert capsys.readouterr().out == first == f"HeadScores (9 ids) in {out}\n"
    # another chunk size / batch budget is an execution setting: still a hit
    assert cli.main(_score(model_dir, corpus, out, "--chunk-size", "4")) == 0
    with pytest.raises(AssertionError, match="was loaded"):  # a new parameter is not
        cli.main(_score(model_dir, corpus, out, "--kind", "literal"))
    with pytest.raises(AssertionError, match="was loaded"):  # --no-resume never serves
        cli.main(_score(model_dir, corpus, out, "--no-resume"))


def test_a_cache_hit_imports_no_torch(files, tmp_path):
    _, model_dir, corpus = files
    out = tmp_path / "out"
    argv = _score(model_dir, corpus, out)
    code = textwrap.dedent(
        f"""
        import sys
        from idiomlens.cli import main
        code = main({argv!r})
        print(code, sorted({{m.split('.')[0] for m in sys.modules}} & {{'torch', 'transformer_lens'}}))
        """
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = [sys.executable, "-c", code]
    first = subprocess.run(run, capture_output=True, text=True, cwd=REPO, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.strip().endswith("0 ['torch', 'transformer_lens']")
    again = subprocess.run(run, capture_output=True, text=True, cwd=REPO, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.strip().splitlines() == [f"HeadScores (9 ids) in {out}", "0 []"]


def test_changed_weights_or_damaged_result_take_the_full_path(files, tmp_path, capsys):
    from idiomlens.data import IdiomCorpus
    from idiomlens.models import load_model
    from idiomlens.scoring import HeadScores, score_heads

    _, model_dir, corpus = files
    model = shutil.copytree(model_dir, tmp_path / "model")
    out = tmp_path / "out"
    assert cli.main(_score(model, corpus, out)) == 0
    save_hooked(tiny_model(n_layers=2, n_heads=4, seed=7), model)  # new weights, same folder
    assert cli.main(_score(model, corpus, out)) == 0
    expected = score_heads(load_model(model), IdiomCorpus.from_jsonl(corpus), progress=False)
    torch.testing.assert_close(HeadScores.load(out).scores, expected.scores, rtol=0, atol=1e-5)
    req = key(model, corpus, tmp_path)
    assert lookup(out, req) is not None  # the new weights' request is recorded
    tensors = out / "tensors.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-4])  # damaged merged result: no fast answer
    assert lookup(out, req) is None
    capsys.readouterr()
    assert cli.main(_score(model, corpus, out)) == 0  # rebuilt from the chunks
    torch.testing.assert_close(HeadScores.load(out).scores, expected.scores, rtol=0, atol=1e-5)


def test_a_copied_model_folder_is_found_by_run_key_and_then_recorded(files, tmp_path, capsys):
    _, model_dir, corpus = files
    out = tmp_path / "out"
    assert cli.main(_score(model_dir, corpus, out)) == 0
    renamed = shutil.copytree(model_dir, tmp_path / "renamed")
    (renamed / "README.md").write_text("notes")  # another file: another request
    written = (out / "tensors.safetensors").stat().st_mtime_ns
    assert cli.main(_score(renamed, corpus, out)) == 0  # full path, served by the run key
    assert (out / "tensors.safetensors").stat().st_mtime_ns == written  # nothing recomputed
    assert len(json.loads((out / "requests.json").read_text())) == 2
