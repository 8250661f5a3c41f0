"""The lab's training loop: one run of one validated config in one folder.

Reproducible: the model is built by :func:`idiomlens.models.build_model` from
``train.seed``; batch order draws from a local generator seeded ``seed + 1`` and
callbacks get one seeded ``seed + 2``; the thread count is fixed and deterministic
algorithms are on for the duration (both restored after). Resumable: every
``checkpoint_every`` steps the full state is saved (:mod:`.state`), and a rerun in the
same folder continues from it and ends at the same weights as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from ...models.build import build_model
from .callbacks import StepContext, call
from .config import LabConfig, LabConfigError
from .data import LMData, Split
from .state import RunState, load_checkpoint, save_checkpoint

__all__ = ["model_fields", "run_training", "evaluate", "lr_at", "reproducible"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def reproducible(threads: int, deterministic: bool, device: str) -> Iterator[None]:
    """Fix the thread count and (optionally) deterministic algorithms; restore both after."""
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=not device.startswith("cpu"))
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
        torch.set_num_threads(old_threads)


def model_fields(cfg: LabConfig, data: LMData) -> dict[str, Any]:
    """The ``HookedTransformerConfig`` fields of the run, defaults filled from the data."""
    fields = dict(cfg.model)
    width = max(data.train.tokens.shape[1], data.val.tokens.shape[1])
    fields.setdefault("n_ctx", width)
    if fields["n_ctx"] < width:
        raise LabConfigError(
            f"model.n_ctx: {fields['n_ctx']} < the longest sample ({width} tokens)"
        )
    fields.setdefault("d_vocab", len(data.tokenizer))
    if fields["d_vocab"] < len(data.tokenizer):
        raise LabConfigError(
            f"model.d_vocab: {fields['d_vocab']} < the tokenizer's {len(data.tokenizer)} tokens"
        )
    fields.setdefault("n_heads", max(1, fields["d_model"] // 16))
    fields.setdefault("d_head", fields["d_model"] // fields["n_heads"])
    if not fields.get("attn_only", False):
        fields.setdefault("act_fn", "gelu")
    if fields.get("positional_embedding_type") == "rotary":
        fields.setdefault("rotary_dim", fields["d_head"])
    fields.setdefault("default_prepend_bos", True)
    fields.setdefault("model_name", cfg.name)
    fields["device"] = cfg.train.device
    return fields


def lr_at(cfg: LabConfig, step: int, total: int) -> float:
    """Learning rate at ``step``: linear warm-up, then ``schedule`` down to ``min_lr_ratio``."""
    t = cfg.train
    if step < t.warmup:
        return t.lr * (step + 1) / t.warmup
    frac = (step - t.warmup) / max(1, total - t.warmup)
    decay = {"cosine": 0.5 * (1 + math.cos(math.pi * frac)), "linear": 1 - frac, "constant": 1.0}[
        t.schedule
    ]
    return t.lr * (t.min_lr_ratio + (1 - t.min_lr_ratio) * decay)


def total_steps(cfg: LabConfig, n_train: int) -> int:
    if cfg.train.steps is not None:
        return cfg.train.steps
    return max(1, math.ceil(cfg.train.epochs * n_train / cfg.train.batch_size))


def _hooked(model: Any, hooks: list[Any]) -> Any:
    return model.hooks(fwd_hooks=hooks) if hooks else contextlib.nullcontext()


def _width(split: Split, rows: Tensor) -> int:
    used = (split.loss_mask[rows] | split.scored[rows]).any(0).nonzero()
    return int(used.max()) + 1 if len(used) else 2


def masked_loss(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Mean cross-entropy of ``logits [b, p, v]`` against ``targets [b, p]`` where ``mask``."""
    return F.cross_entropy(logits[mask].float(), targets[mask])


@torch.no_grad()
def evaluate(
    model: Any, split: Split, *, batch_size: int, hooks: list[Any], has_accuracy: bool
) -> dict[str, float]:
    """``val_loss`` over the loss targets and, for tasks, token and sequence accuracy
    over the scored targets (``val_accuracy``, ``val_seq_accuracy``)."""
    device = next(model.parameters()).device
    loss_sum, n_loss, hits, n_scored, seq_hits = 0.0, 0, 0, 0, 0
    for start in range(0, len(split), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(split)))
        width = _width(split, rows)
        tokens = split.tokens[rows, :width].to(device)
        with _hooked(model, hooks):
            logits = model(tokens[:, :-1])
        targets = tokens[:, 1:]
        lmask, smask = (
            split.loss_mask[rows, 1:width].to(device),
            split.scored[rows, 1:width].to(device),
        )
        loss_sum += float(F.cross_entropy(logits[lmask].float(), targets[lmask], reduction="sum"))
        n_loss += int(lmask.sum())
        right = (logits.argmax(-1) == targets) | ~smask
        hits += int((right & smask).sum())
        n_scored += int(smask.sum())
        seq_hits += int(right.all(1).sum())
    out = {"val_loss": loss_sum / max(1, n_loss)}
    if has_accuracy:
        out["val_accuracy"] = hits / max(1, n_scored)
        out["val_seq_accuracy"] = seq_hits / len(split)
    return out


def _next_rows(cfg: LabConfig, state: RunState, n: int) -> Tensor:
    bs = cfg.train.batch_size
    if state.cursor + bs > len(state.order):
        state.order, state.cursor = torch.randperm(n, generator=state.data_gen), 0
    rows = state.order[state.cursor : state.cursor + bs]
    state.cursor += bs
    return rows


def _optimizer(model: Any, cfg: LabConfig) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if n.split(".")[-1].startswith("W_")]
    other = [p for n, p in model.named_parameters() if not n.split(".")[-1].startswith("W_")]
    t = cfg.train
    groups = [
        {"params": decay, "weight_decay": t.weight_decay},
        {"params": other, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2))


def _step(
    model: Any, opt: Any, ctx: StepContext, cfg: LabConfig, hooks: list[Any], callbacks: list[Any]
) -> None:
    call(callbacks, "on_step_start", ctx)
    with _hooked(model, hooks):
        logits = model(ctx.inputs)
    ctx.loss = masked_loss(logits, ctx.targets, ctx.mask)
    opt.zero_grad(set_to_none=True)
    ctx.loss.backward()
    if cfg.train.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
    call(callbacks, "on_before_optimizer_step", ctx)
    opt.step()


def run_training(
    cfg: LabConfig,
    data: LMData,
    folder: Any,
    key: str,
    *,
    hooks: list[Any],
    callbacks: list[Any],
    metrics: Any,
) -> tuple[Any, RunState, float]:
    """Train (or resume) the run; returns the model (eval mode), final state and seconds."""
    t = cfg.train
    n_steps = total_steps(cfg, len(data.train))
    eval_every, log_every = t.eval_every, t.log_every or t.eval_every
    ckpt_every = t.checkpoint_every or t.eval_every
    device = torch.device(t.device)
    with reproducible(t.threads, t.deterministic, t.device):
        model = build_model(model_fields(cfg, data), seed=t.seed, tokenizer=data.tokenizer)
        opt = _optimizer(model, cfg)
        state = load_checkpoint(folder / "checkpoint.pt", model, opt, key)
        if state is None:
            data_gen = torch.Generator().manual_seed(t.seed + 1)
            state = RunState(0, torch.randperm(len(data.train), generator=data_gen), 0, data_gen,
                             torch.Generator().manual_seed(t.seed + 2), torch.zeros((), device=device))  # fmt: skip
        else:
            log.info("%s: resuming at step %d", folder, state.step)
        metrics.reset(state.history)
        opts = {"batch_size": t.eval_batch_size, "hooks": hooks, "has_accuracy": data.has_accuracy}

        def evaluate_now() -> dict[str, float]:
            return evaluate(model.eval(), data.val, **opts)

        if state.step == 0 and not state.history:
            metrics.add(state, {"step": 0, "samples": 0, "tokens": 0, **evaluate_now()})
        t0 = time.perf_counter()
        bar = tqdm(
            total=n_steps, initial=state.step, disable=not t.progress, desc=cfg.name, leave=False
        )
        while state.step < n_steps:
            model.train()
            rows = _next_rows(cfg, state, len(data.train))
            width = _width(data.train, rows)
            tokens = data.train.tokens[rows, :width].to(device)
            ctx = StepContext(state.step, n_steps, model, opt, tokens[:, :-1], tokens[:, 1:],
                              data.train.loss_mask[rows, 1:width].to(device), state.user_gen)  # fmt: skip
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, state.step, n_steps)
            _step(model, opt, ctx, cfg, hooks, callbacks)
            state.step += 1
            ctx.step = state.step
            state.window_sum += ctx.loss.detach()
            state.window_count += 1
            state.tokens_seen += int(ctx.mask.sum())
            call(callbacks, "on_step_end", ctx)
            bar.update(1)
            row = dict(ctx.logged)
            last = state.step == n_steps
            if state.step % log_every == 0 or last:
                row["train_loss"] = float(state.window_sum) / state.window_count
                row["lr"] = opt.param_groups[0]["lr"]
                state.window_sum, state.window_count = torch.zeros((), device=device), 0
            if state.step % eval_every == 0 or last:
                row.update(evaluate_now())
                bar.set_postfix(val_loss=f"{row['val_loss']:.3f}")
            if row:
                base = {
                    "step": state.step,
                    "samples": state.step * t.batch_size,
                    "tokens": state.tokens_seen,
                }
                metrics.add(state, {**base, **row})
            if state.step % ckpt_every == 0 and not last:
                save_checkpoint(folder / "checkpoint.pt", model, opt, state, key)
        bar.close()
        model.eval()
    return model, state, time.perf_counter() - t0
