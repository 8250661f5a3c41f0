"""Benchmark: idiomlens patching vs TransformerLens's ``get_act_patch_*`` on the same inputs.

Prints, per model and method, the wall time of TransformerLens (including its clean
``run_with_cache``), of idiomlens, their ratio and the largest absolute difference of the
effects (exact patching) or the Spearman correlation with exact patching (attribution
patching, compared with TransformerLens's exact by-position patching it replaces). Rows
marked ``[-1]`` pass ``metric_positions=[-1]`` (the metric reads the last position only).

Two random models: a small vocabulary (the blocks dominate) and a 50k vocabulary (the
unembedding dominates). Usage::

    python benchmarks/bench_patching.py                 # default sizes
    python benchmarks/bench_patching.py --quick         # smaller, for a busy machine
    python benchmarks/bench_patching.py --device cuda   # GPU figures
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # TransformerLens's per-cell progress bars

import torch  # noqa: E402
from transformer_lens import patching as tl_patching  # noqa: E402

from idiomlens.interventions import attribution_patch_heads, patch_heads  # noqa: E402
from idiomlens.interventions.attribution_patching import spearman  # noqa: E402
from idiomlens.models import tiny_model  # noqa: E402


def timed(fn, device: str, repeats: int):
    """Best wall time of ``repeats`` runs (after one warm-up run) and the last output."""
    out = fn()
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, out


def bench_model(
    name: str, cfg: dict, batch: int, n_pos: int, first_diff: int, device: str, repeats: int
) -> None:
    """Clean and corrupted share the tokens before ``first_diff`` (BOS at 0)."""
    model = tiny_model(with_tokenizer=False, device=device, n_ctx=max(64, n_pos), **cfg)
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(1, model.cfg.d_vocab, (batch, n_pos), generator=gen)
    clean[:, 0] = 0
    corrupted = clean.clone()
    corrupted[:, first_diff] = torch.randint(1, model.cfg.d_vocab, (batch,), generator=gen)
    clean, corrupted = clean.to(device), corrupted.to(device)

    def metric(logits):
        return (logits[:, -1, 1] - logits[:, -1, 2]).mean()

    def tl(fn):
        def run():
            _, cache = model.run_with_cache(clean)
            return fn(model, corrupted, cache, metric)

        return run

    print(
        f"\n{name}: {model.cfg.n_layers} layers x {model.cfg.n_heads} heads, d_model "
        f"{model.cfg.d_model}, d_vocab {model.cfg.d_vocab}, batch {batch}, pos {n_pos}, {device}"
    )
    print(f"{'method':<28}{'TL s':>9}{'ours s':>9}{'speed-up':>10}  check")
    rows = [
        ("heads, all positions", tl_patching.get_act_patch_attn_head_out_all_pos, False),
        ("heads, by position", tl_patching.get_act_patch_attn_head_out_by_pos, True),
    ]
    with torch.no_grad():
        results = {}
        for label, fn, by_pos in rows:
            t_tl, ref = timed(tl(fn), device, repeats)
            results[by_pos] = (t_tl, ref)
            # generic metric, then declaring that it reads only the last position
            for suffix, positions in (("", None), (" [-1]", [-1])):
                t_ours, got = timed(
                    lambda by_pos=by_pos, positions=positions: patch_heads(
                        model,
                        clean,
                        corrupted,
                        metric,
                        by_position=by_pos,
                        metric_positions=positions,
                    ),
                    device,
                    repeats,
                )
                diff = (got.effects - ref.cpu()).abs().max().item()
                print(
                    f"{label + suffix:<28}{t_tl:9.3f}{t_ours:9.3f}{t_tl / t_ours:9.1f}x  "
                    f"max|diff| {diff:.1e}"
                )
    t_tl, ref = results[True]
    t_attr, attr = timed(
        lambda: attribution_patch_heads(model, clean, corrupted, metric, by_position=True),
        device,
        repeats,
    )
    rho = spearman(attr.effects.flatten(), (ref.cpu() - attr.corrupted_metric).flatten())
    print(
        f"{'attribution, by position':<28}{t_tl:9.3f}{t_attr:9.3f}{t_tl / t_attr:9.1f}x  "
        f"spearman vs exact {rho:.2f} (random weights)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    small = {
        "n_layers": 4,
        "n_heads": 8,
        "d_model": 128,
        "d_head": 16,
        "d_mlp": 512,
        "d_vocab": 512,
    }
    large = dict(small, d_vocab=50257)
    batch, n_pos = (4, 12) if args.quick else (8, 24)
    large_batch = batch // 2 if args.quick else 4
    for first_diff in (1, n_pos // 2):  # no shared prefix beyond BOS / half the sentence
        bench_model("small vocabulary", small, batch, n_pos, first_diff, args.device, args.repeats)
        bench_model(
            "50k vocabulary", large, large_batch, n_pos, first_diff, args.device, args.repeats
        )


if __name__ == "__main__":
    main()
