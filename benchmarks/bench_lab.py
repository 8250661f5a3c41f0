"""Benchmark the small-transformer lab: training throughput, and the induction check.

``throughput`` (default): training tokens/s of ``train_lm`` against a minimal plain
PyTorch loop (AdamW, masked cross-entropy, grad clipping) on the same
``HookedTransformer`` (same config, same seed, same data tensors), measured in the same
run, alternating lab / plain ``--repeats`` times; prints the best of each and the ratio
(target >= 0.9). The lab's figure is its training loop only (``training.json``'s
``seconds``, which includes the one final evaluation on ``--n-val`` samples).

``--induction``: the full-strength induction check: a 2-layer attention-only model
trained by ``train_lm`` on the induction task, then ``detect_heads(model, prompts,
"induction")`` on held-out samples; prints the head scores and whether the top
induction head sits in layer 1 and beats its own previous-token score.

Usage::

    python benchmarks/bench_lab.py                      # d_model 128, 200 steps
    python benchmarks/bench_lab.py --steps 20 --repeats 1   # smoke run
    python benchmarks/bench_lab.py --induction
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from idiomlens.models import build_model
from idiomlens.training.lab import train_lm
from idiomlens.training.lab.config import LabConfig
from idiomlens.training.lab.data import build_data
from idiomlens.training.lab.loop import model_fields


def lab_config(args: argparse.Namespace) -> dict:
    return {
        "model": {"n_layers": args.layers, "d_model": args.d_model, "n_heads": 4},
        "data": {"task": "copy", "length": args.length, "n_symbols": 32, "n_train": 20000, "n_val": args.n_val},
        "train": {"steps": args.steps, "batch_size": args.batch_size, "lr": 1e-3, "warmup": 10,
                  "eval_every": args.steps, "threads": args.threads, "progress": False},
    }  # fmt: skip


def plain_loop(cfg: LabConfig, steps: int, threads: int) -> tuple[float, int]:
    """The baseline: seconds and input tokens of a bare training loop."""
    data = build_data(cfg)
    torch.set_num_threads(threads)
    model = build_model(model_fields(cfg, data), seed=cfg.train.seed, tokenizer=data.tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
    gen = torch.Generator().manual_seed(1)
    tokens, mask = data.train.tokens, data.train.loss_mask
    model.train()
    n_tokens, t0 = 0, time.perf_counter()
    for _ in range(steps):
        rows = torch.randint(len(tokens), (cfg.train.batch_size,), generator=gen)
        batch, m = tokens[rows], mask[rows, 1:]
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits[m], batch[:, 1:][m])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        n_tokens += batch[:, :-1].numel()
    return time.perf_counter() - t0, n_tokens


def lab_run(raw: dict, out: Path) -> tuple[float, int]:
    run = train_lm(raw, out=out)
    info = json.loads((run.dir / "training.json").read_text())
    width = run.model.cfg.n_ctx  # every copy sample has the same length
    return info["seconds"], info["steps"] * raw["train"]["batch_size"] * (width - 1)


def throughput(args: argparse.Namespace) -> None:
    raw = lab_config(args)
    cfg = LabConfig.from_dict(raw)
    lab, plain = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            secs, toks = lab_run(raw, Path(tmp) / f"run{i}")
            lab.append(toks / secs)
            secs, toks = plain_loop(cfg, args.steps, args.threads)
            plain.append(toks / secs)
    print(f"config: {args.layers} layers, d_model {args.d_model}, batch {args.batch_size} x {2 * args.length + 1} tokens, "
          f"{args.steps} steps, {args.threads} thread(s), best of {args.repeats}")  # fmt: skip
    print(f"train_lm:    {max(lab):10.0f} tokens/s   (runs: {', '.join(f'{x:.0f}' for x in lab)})")
    print(
        f"plain loop:  {max(plain):10.0f} tokens/s   (runs: {', '.join(f'{x:.0f}' for x in plain)})"
    )
    print(f"ratio train_lm / plain: {max(lab) / max(plain):.3f}  (target >= 0.9)")


INDUCTION = {
    "model": {
        "n_layers": 2,
        "d_model": 64,
        "n_heads": 4,
        "attn_only": True,
        "positional_embedding_type": "shortformer",
    },
    "data": {
        "task": "induction",
        "length": 12,
        "min_length": 6,
        "n_symbols": 32,
        "n_train": 30000,
        "n_val": 300,
    },
    "train": {
        "steps": 500,
        "batch_size": 32,
        "lr": 1e-2,
        "warmup": 20,
        "eval_every": 100,
        "progress": False,
    },
}


def induction(args: argparse.Namespace) -> None:
    import idiomlens
    from idiomlens.training.lab.tasks import get_task

    raw = json.loads(json.dumps(INDUCTION))
    if args.positional:
        raw["model"]["positional_embedding_type"] = args.positional
    t0 = time.perf_counter()
    run = train_lm(raw, out=tempfile.mkdtemp(prefix="bench-lab-induction-"))
    seconds = time.perf_counter() - t0
    params = {k: raw["data"][k] for k in ("length", "min_length", "n_symbols")}
    s = get_task("induction")(torch.Generator().manual_seed(123), 50, "val", **params)
    prompts = [
        run.tokenizer.decode(r[1 : int(m.sum())]) for r, m in zip(s.tokens, s.real, strict=True)
    ]
    ind = idiomlens.detect_heads(run.model, prompts, "induction")
    prev = idiomlens.detect_heads(run.model, prompts, "previous_token")
    ((layer, head, score),) = ind.top(1)
    print(
        f"trained in {seconds:.1f} s; held-out token accuracy {run.history['val_accuracy'].iloc[-1]:.3f}"
    )
    print("induction scores [layer, head]:\n", ind.mean().numpy().round(3))
    print("previous-token scores [layer, head]:\n", prev.mean().numpy().round(3))
    print(f"top induction head L{layer}H{head} = {score:.3f}; in layer 1: {layer == 1}; "
          f"beats its previous-token score: {score > float(prev.mean()[layer, head])}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--induction", action="store_true", help="run the full-strength induction check instead"
    )
    p.add_argument(
        "--positional", help="induction: positional_embedding_type (default shortformer)"
    )
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--length", type=int, default=16)
    p.add_argument("--n-val", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    induction(args) if args.induction else throughput(args)


if __name__ == "__main__":
    main()
