"""Benchmark ``idiomlens.finetune`` against a plain ``Trainer`` + ``peft`` script.

Both train the same LoRA adapter on the same tiny GPT-2 checkpoint (saved to a temporary
folder), the same tokenised idiom sentences, batch size, steps, learning rate and seed,
and both save a checkpoint at the end; ``finetune`` also saves its step-0 checkpoint and
writes ``history.jsonl``. Printed, all measured in this run (median of ``--repeats``,
the two alternating):

* ``train steps/s``: the Trainer's own ``train_steps_per_second`` (the training loop);
* ``end-to-end s``: the whole call (load, tokenise, train, save);
* ``ratio finetune/plain`` of both (target: about 1.0, i.e. overhead only).

Usage::

    python benchmarks/bench_finetune.py                 # 200 steps
    python benchmarks/bench_finetune.py --steps 20      # quicker, for a busy machine
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import (
    AutoModelForCausalLM,
    DataCollatorForLanguageModeling,
    GPT2Config,
    Trainer,
    TrainingArguments,
)
from transformers.trainer_callback import PrinterCallback

from idiomlens.data import demo_corpus
from idiomlens.models import tiny_tokenizer
from idiomlens.training.finetune import finetune


def make_base(folder: Path, *, layers: int, width: int) -> Path:
    tok = tiny_tokenizer()
    config = GPT2Config(
        n_embd=width, n_layer=layers, n_head=4, n_positions=128, vocab_size=len(tok),
        bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def plain_script(base: Path, texts: list[str], out: Path, args: argparse.Namespace) -> float:
    """What a researcher writes by hand: tokenise, wrap with peft, Trainer.train()."""
    tok = tiny_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True)
    lora = LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=0.0,
                      target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True)  # fmt: skip
    torch.manual_seed(args.seed)
    model = get_peft_model(model, lora)
    rows = [
        {"input_ids": [tok.bos_token_id, *tok(t, add_special_tokens=False)["input_ids"]][:64]}
        for t in texts
    ]
    targs = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=args.batch_size, max_steps=args.steps,
        learning_rate=2e-4, seed=args.seed, logging_steps=1, save_strategy="steps",
        save_steps=args.steps, report_to="none", disable_tqdm=True, use_cpu=True,
        remove_unused_columns=False, dataloader_pin_memory=False,
    )  # fmt: skip
    trainer = Trainer(model=model, args=targs, train_dataset=rows, processing_class=tok,
                      data_collator=DataCollatorForLanguageModeling(tok, mlm=False))  # fmt: skip
    trainer.remove_callback(PrinterCallback)  # no per-step printing, as finetune(progress=False)
    output = trainer.train()
    trainer.save_model(str(out / "final"))
    return output.metrics["train_steps_per_second"]


def with_finetune(base: Path, texts: list[str], out: Path, args: argparse.Namespace) -> float:
    result = finetune(
        base, texts, method="lora", out=out, max_steps=args.steps, batch_size=args.batch_size,
        lr=2e-4, seed=args.seed, checkpoints=0, max_length=64, progress=False, device="cpu",
    )  # fmt: skip
    return args.steps / result.meta["train_runtime_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    texts = [ex.text for ex in demo_corpus()]
    timings: dict[str, list[tuple[float, float]]] = {"plain": [], "finetune": []}
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        base = make_base(Path(tmp) / "base", layers=args.layers, width=args.width)
        for r in range(args.repeats):
            order = ["plain", "finetune"] if r % 2 == 0 else ["finetune", "plain"]
            for name in order:
                fn = plain_script if name == "plain" else with_finetune
                start = time.perf_counter()
                steps_per_s = fn(base, texts, Path(tmp) / f"{name}-{r}", args)
                timings[name].append((steps_per_s, time.perf_counter() - start))
    med = {
        k: (statistics.median(s for s, _ in v), statistics.median(t for _, t in v))
        for k, v in timings.items()
    }
    print(f"GPT-2 {args.layers} layers x {args.width}, LoRA, {args.steps} steps, batch {args.batch_size}, "
          f"{args.threads} thread(s), median of {args.repeats}")  # fmt: skip
    print(f"{'':10s} {'train steps/s':>14s} {'end-to-end s':>13s}")
    for name, (sps, wall) in med.items():
        print(f"{name:10s} {sps:14.2f} {wall:13.2f}")
    print(f"ratio finetune/plain: train steps/s {med['finetune'][0] / med['plain'][0]:.3f}x, "
          f"end-to-end time {med['finetune'][1] / med['plain'][1]:.3f}x")  # fmt: skip


if __name__ == "__main__":
    main()
