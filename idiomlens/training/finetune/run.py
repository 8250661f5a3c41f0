"""``finetune``: configure ``transformers.Trainer`` (+ ``peft``) for one run, resumably.

The training loop, optimizer (AdamW), schedules, gradient accumulation, mixed precision,
checkpoint saving, resuming (optimizer, scheduler, RNG and data position) and
multi-GPU (``torchrun`` / ``accelerate launch``) are the Trainer's; this module only
reads the data, picks the trainable parameters (:mod:`.methods`), decides the
checkpoint steps (:mod:`.callbacks`) and keeps one run per folder (:mod:`.folder`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from idiomlens._io import atomic_write_json

from .callbacks import (
    COMPLETE_MARKER,
    HISTORY_FILE,
    JsonlHistory,
    LossBar,
    ScheduledSaves,
    StepZeroSave,
)
from .config import FinetuneConfig
from .data import PadCollator, data_hash, read_records, tokenize_records
from .folder import check_folder, checkpoint_folders, claim_folder, resume_point
from .methods import METHODS, parameter_counts, prepare_model
from .result import FinetuneResult

__all__ = ["finetune", "check_source", "training_arguments"]

log = logging.getLogger(__name__)

#: Context cap when the model's is longer (tokens per training example).
MAX_DEFAULT_LENGTH = 1024


def check_source(source: Any) -> Path:
    """The absolute path of a local HF checkpoint folder, or one clear ``ValueError``."""
    from idiomlens.models.hf import is_hf_dir, read_hf_config

    if not isinstance(source, (str, Path)):
        raise TypeError(
            f"finetune: source must be a checkpoint folder path, not {type(source).__name__}"
        )
    path = Path(source).expanduser()
    if not is_hf_dir(path):
        what = "does not exist" if not path.exists() else "has no config.json"
        raise ValueError(
            f"finetune: source {str(source)!r} is not a local Hugging Face checkpoint folder "
            f"(it {what}); download the model first (e.g. `hf download NAME --local-dir DIR`) "
            "and pass the folder"
        )
    read_hf_config(path)  # supported architecture, readable config
    return path.resolve()


def _source_identity(path: Path) -> dict[str, Any]:
    """Path and weight-file sizes of the base (cheap; a changed file changes its size or
    name in practice, and hashing gigabytes on every resume would not be)."""
    files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin"))
    return {"path": str(path), "weights": {p.name: p.stat().st_size for p in files}}


@contextlib.contextmanager
def _preserve_global_rng() -> Iterator[None]:
    """The Trainer seeds Python's, NumPy's and torch's global generators; restore them."""
    import numpy as np

    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def _precision(config: FinetuneConfig) -> str:
    on_gpu = torch.cuda.is_available() and config.device != "cpu"
    if config.precision == "auto":
        return "bf16" if on_gpu and torch.cuda.is_bf16_supported() else "fp32"
    if config.precision != "fp32" and not on_gpu:
        raise ValueError(f"precision={config.precision!r} needs a CUDA device; use fp32 on CPU")
    if config.precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError("precision='bf16' is not supported by this GPU; use fp16 or fp32")
    return config.precision


def training_arguments(config: FinetuneConfig, out: Path, *, has_eval: bool, precision: str) -> Any:
    """The ``TrainingArguments`` of a run (saving is driven by :class:`ScheduledSaves`)."""
    from transformers import TrainingArguments

    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    warmup: dict[str, Any] = {"warmup_steps": config.warmup}
    if isinstance(config.warmup, float) and "warmup_ratio" in known:  # transformers 4.x
        warmup = {"warmup_ratio": config.warmup}
    evaluation: dict[str, Any] = {"eval_strategy": "no"}
    if has_eval and config.eval_every is not None:
        evaluation = {"eval_strategy": "steps", "eval_steps": config.eval_every}
    return TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps if config.max_steps is not None else -1,
        lr_scheduler_type=config.schedule,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        save_strategy="no",  # ScheduledSaves sets control.should_save at the chosen steps
        report_to=list(config.report_to) or "none",
        disable_tqdm=not config.progress,
        use_cpu=config.device == "cpu",
        dataloader_num_workers=config.dataloader_workers,
        remove_unused_columns=False,
        dataloader_pin_memory=torch.cuda.is_available() and config.device != "cpu",
        label_names=["labels"],
        **warmup,
        **evaluation,
    )


def _split(features: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Seeded train / held-out split (local generator)."""
    if fraction == 0:
        return features, []
    n_eval = max(1, round(fraction * len(features)))
    if n_eval >= len(features):
        raise ValueError(f"eval_fraction={fraction} leaves no training example of {len(features)}")
    order = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed)).tolist()
    held = set(order[:n_eval])
    return [f for i, f in enumerate(features) if i not in held], [features[i] for i in sorted(held)]


def _fields(config: FinetuneConfig) -> tuple[str, ...]:
    if config.objective == "lm":
        return (config.text_field,)
    return (config.prompt_field, config.completion_field)


def _max_length(config: FinetuneConfig, hf_config: Any) -> int:
    if config.max_length is not None:
        return config.max_length
    native = getattr(hf_config, "max_position_embeddings", None) or getattr(
        hf_config, "n_positions", MAX_DEFAULT_LENGTH
    )
    return min(int(native), MAX_DEFAULT_LENGTH)


def finetune(
    source: str | Path,
    data: Any,
    *,
    method: str = "lora",
    out: str | Path,
    objective: str = "lm",
    max_steps: int | None = None,
    epochs: float = 1.0,
    lr: float | None = None,
    seed: int = 0,
    eval_data: Any = None,
    **options: Any,
) -> FinetuneResult:
    """Fine-tune a local Hugging Face checkpoint with ``method`` and save loadable checkpoints.

    Args:
        source: a local HF checkpoint folder (``config.json``, weights, tokenizer) of a
            supported architecture (GPT-2, GPT-NeoX/Pythia, Llama, Qwen2/3, Mistral).
        data: training data: an ``IdiomCorpus``, a ``.txt`` / ``.jsonl`` / ``.csv``
            file, a saved ``datasets.Dataset`` folder, a ``Dataset`` or a list (see
            :mod:`.data`); ``{text}`` records for ``"lm"``, ``{prompt, completion}``
            for ``"completion"``.
        method: ``"lora"``, ``"ia3"``, ``"bitfit"`` or ``"full"``.
        out: the run folder (created). Calling again with the same arguments resumes an
            interrupted run from its last checkpoint, or returns the finished one.
        objective: ``"lm"`` or ``"completion"`` (loss on completion tokens only).
        max_steps, epochs: run length (``max_steps`` wins when given).
        lr: peak learning rate (default per method).
        seed: seed of data order, held-out split, adapter init and dropout.
        eval_data: held-out data in the same format as ``data`` (else ``eval_fraction``).
        **options: any other :class:`~.config.FinetuneConfig` field: ``batch_size``,
            ``grad_accum``, ``warmup`` (ratio or steps), ``schedule``, ``weight_decay``,
            ``eval_fraction``, ``eval_every``, ``precision``, ``checkpoints`` (int: that
            many log-spaced saves plus step 0 and the end), ``lora_r``, ``lora_alpha``,
            ``lora_dropout``, ``target_modules``, ``max_length``, ``report_to``,
            ``progress``, ...

    Returns:
        :class:`~.result.FinetuneResult`; ``result.final`` and every
        ``result.checkpoints`` folder load with ``idiomlens.load_model``.

    Raises:
        ValueError: an unknown method or option value, a source that is not a local
            checkpoint, data without the needed fields (naming file and line), or an
            ``out`` folder holding something else (``RunFolderError``; untouched).
    """
    config = FinetuneConfig.from_kwargs(
        dict(
            options,
            method=method,
            objective=objective,
            max_steps=max_steps,
            epochs=epochs,
            lr=lr,
            seed=seed,
        )
    )
    path = check_source(source)
    fields = _fields(config)
    records = read_records(data, fields=fields)
    eval_records = read_records(eval_data, fields=fields) if eval_data is not None else []
    if eval_records and config.eval_fraction:
        raise ValueError("give eval_data or eval_fraction, not both")
    identity = {
        "source": _source_identity(path),
        "config": config.identity(),
        "data_sha256": data_hash(records),
        "eval_sha256": data_hash(eval_records) if eval_records else None,
    }
    out = Path(out).expanduser().resolve()
    if check_folder(out, identity):
        log.info("%s already holds this finished run; loading it", out)
        return FinetuneResult.load(out)
    with _preserve_global_rng():
        return _train(path, config, records, eval_records, out, identity)


def _train(
    path: Path,
    config: FinetuneConfig,
    records: list[dict],
    eval_records: list[dict],
    out: Path,
    identity: dict[str, Any],
) -> FinetuneResult:
    from transformers import Trainer

    from idiomlens.models.hf import load_hf_model, load_hf_tokenizer

    tokenizer = load_hf_tokenizer(path)
    if tokenizer is None:
        raise ValueError(f"finetune: source {path} has no tokenizer files to read the data with")
    model = load_hf_model(path, dtype=torch.float32)  # name_or_path: the absolute path
    max_length = _max_length(config, model.config)
    fields = _fields(config)
    tokenize = dict(objective=config.objective, max_length=max_length, fields=fields)
    features = tokenize_records(records, tokenizer, **tokenize)
    train, held_out = _split(features, config.eval_fraction, config.seed)
    if eval_records:
        held_out = tokenize_records(eval_records, tokenizer, **tokenize)
    if config.eval_every is not None and not held_out:
        raise ValueError("eval_every needs held-out data: pass eval_data or eval_fraction")
    model = prepare_model(model, config)
    trainable, total = parameter_counts(model)
    precision = _precision(config)
    claim_folder(out, identity)  # every input checked: the folder becomes this run's
    args = training_arguments(config, out, has_eval=bool(held_out), precision=precision)
    resume = resume_point(out)
    saves, step_zero = ScheduledSaves(config.checkpoints), StepZeroSave()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=held_out or None,
        data_collator=PadCollator(pad_id),
        processing_class=tokenizer,
        callbacks=[step_zero, saves, JsonlHistory(out / HISTORY_FILE, _step(resume))],
    )
    step_zero.trainer = trainer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    # The Trainer prints every log record (once per step here); show a bar with the loss
    # instead, or nothing without progress. The records are in history.jsonl.
    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(LossBar())
    if resume is not None:
        log.info("resuming %s from %s", out, resume)
    output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    trainer.save_model(str(out / "final"))
    if trainer.is_world_process_zero():
        atomic_write_json(out / "final" / COMPLETE_MARKER, {"step": trainer.state.global_step})
    done = checkpoint_folders(out)
    result = FinetuneResult(
        out=out,
        final=out / "final",
        checkpoints=tuple(f for _, f in done),
        steps=tuple(s for s, _ in done),
        method=config.method,
        objective=config.objective,
        trainable_params=trainable,
        total_params=total,
        data_sha256=identity["data_sha256"],
        n_train=len(train),
        n_eval=len(held_out),
        source=str(path),
        config=config.to_dict(),
        meta=_meta(model, path, precision, max_length, output, METHODS[config.method].adapter),
    )
    if trainer.is_world_process_zero():
        result.save()
    return result


def _step(resume: Path | None) -> int:
    return int(resume.name.rsplit("-", 1)[1]) if resume is not None else 0


def _meta(
    model: Any, path: Path, precision: str, max_length: int, output: Any, adapter: bool
) -> dict:
    from idiomlens import __version__
    from idiomlens.models.hf import architecture_of

    metrics = dict(getattr(output, "metrics", {}) or {})
    return {
        "library_version": __version__,
        "architecture": architecture_of(model.config, path),
        "precision": precision,
        "max_length": max_length,
        "adapter": adapter,
        "global_step": int(output.global_step),
        "train_loss": float(output.training_loss),
        "train_runtime_s": metrics.get("train_runtime"),
    }
