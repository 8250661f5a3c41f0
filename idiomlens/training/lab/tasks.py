"""Synthetic tasks for the small-transformer lab: a registry keyed by name.

A task is one decorated function ``fn(gen, n, split, **params) -> TaskSamples`` that
draws ``n`` samples from the local generator ``gen``; ``split`` is ``"train"`` or
``"val"`` (tasks with a finite sample space, like modular addition, use it to keep the
two splits disjoint; the lab also drops validation samples that occur in training).
Its keyword parameters, with their defaults and annotations, are the task's config
fields (``{"task": "copy", "length": 6}``), checked by type. Every sample starts with
BOS (id 0) and marks the target positions that count for the task's accuracy (and, by
default, for the loss) in ``TaskSamples.scored``.

>>> @register_task("constant")
... def constant(gen, n, split, *, length: int = 4) -> TaskSamples:
...     '''Predict a run of zeros.'''
...     return TaskSamples.from_rows([[1] * (length + 1)] * n, [range(1, length + 1)] * n, [BOS, "0"])
>>> get_task("constant").defaults
{'length': 4}
>>> get_task("constant")(torch.Generator(), 2, "train", length=2).tokens.tolist()
[[0, 1, 1, 1], [0, 1, 1, 1]]
>>> del TASKS["constant"]
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from ...models.tokenizers import BOS

__all__ = ["TaskSamples", "Task", "TASKS", "register_task", "get_task", "symbols"]


@dataclass(frozen=True)
class TaskSamples:
    """``n`` samples of a task: ``tokens`` (BOS first, right-padded with 0), ``scored``
    (which target positions count), the ``vocab`` (token id -> symbol, BOS at 0) and,
    when samples differ in length, ``real`` (False at padding; default all real)."""

    tokens: Int[Tensor, "n pos"]
    scored: Bool[Tensor, "n pos"]
    vocab: tuple[str, ...]
    real: Bool[Tensor, "n pos"] | None = None

    def __post_init__(self) -> None:
        if self.tokens.shape != self.scored.shape:
            raise ValueError(
                f"tokens {tuple(self.tokens.shape)} != scored {tuple(self.scored.shape)}"
            )
        if self.scored[:, 0].any():
            raise ValueError("position 0 (BOS) cannot be a target")
        if int(self.tokens.max()) >= len(self.vocab) or self.vocab[0] != BOS:
            raise ValueError(
                f"tokens must be ids into vocab (BOS {BOS!r} at 0), got max {int(self.tokens.max())}"
            )

    @classmethod
    def from_rows(
        cls, rows: Sequence[Sequence[int]], scored: Sequence[Iterable[int]], vocab: Sequence[str]
    ) -> TaskSamples:
        """Build from per-sample token lists *without* BOS (it is prepended) and the
        positions (in the BOS-prefixed sample) that are scored."""
        width = 1 + max(len(r) for r in rows)
        tokens = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.bool)
        real = torch.zeros(len(rows), width, dtype=torch.bool)
        for i, (row, pos) in enumerate(zip(rows, scored, strict=True)):
            tokens[i, 1 : 1 + len(row)] = torch.as_tensor(list(row), dtype=torch.long)
            mask[i, list(pos)] = True
            real[i, : 1 + len(row)] = True
        return cls(tokens, mask, tuple(vocab), real)


@dataclass(frozen=True)
class Task:
    """A registered task: its function, parameter defaults and annotations."""

    name: str
    fn: Callable[..., TaskSamples]
    defaults: dict[str, Any]
    types: dict[str, Any]

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.fn) or ""

    def __call__(self, gen: torch.Generator, n: int, split: str, **params: Any) -> TaskSamples:
        return self.fn(gen, n, split, **{**self.defaults, **params})


#: Registered tasks by name (fill with :func:`register_task`).
TASKS: dict[str, Task] = {}


def register_task(
    name: str | None = None,
) -> Callable[[Callable[..., TaskSamples]], Callable[..., TaskSamples]]:
    """Decorator: register ``fn(gen, n, split, *, param=default, ...)`` as a task.

    Every parameter after ``split`` needs a default and should be annotated (the
    annotation is the type a config value is checked against).
    """

    def deco(fn: Callable[..., TaskSamples]) -> Callable[..., TaskSamples]:
        key = name or fn.__name__
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())[3:]
        if len(sig.parameters) < 3 or any(p.default is inspect.Parameter.empty for p in params):
            raise TypeError(
                f"task {key!r}: signature must be (gen, n, split, *, param=default, ...)"
            )
        hints = typing.get_type_hints(fn)
        TASKS[key] = Task(
            key,
            fn,
            {p.name: p.default for p in params},
            {p.name: hints.get(p.name, Any) for p in params},
        )
        return fn

    return deco


def get_task(name: str) -> Task:
    """The registered task ``name`` (a ``KeyError`` lists the known ones)."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; registered: {sorted(TASKS)}")
    return TASKS[name]


def symbols(n: int) -> list[str]:
    """``["0", "1", ..., str(n - 1)]``."""
    return [str(i) for i in range(n)]


def _check(cond: bool, task: str, message: str) -> None:
    if not cond:
        raise ValueError(f"task {task!r}: {message}")


def _random(gen: torch.Generator, n: int, length: int, n_symbols: int) -> Tensor:
    return torch.randint(n_symbols, (n, length), generator=gen)


def _seq_to_seq(x: Tensor, y: Tensor, n_symbols: int) -> TaskSamples:
    """``BOS x | y`` with symbols 1..n_symbols and ``|`` last; the ``y`` positions count."""
    n, length = x.shape
    sep = torch.full((n, 1), n_symbols + 1)
    body = torch.cat([x + 1, sep, y + 1], dim=1)
    tokens = torch.cat([torch.zeros(n, 1, dtype=torch.long), body], dim=1)
    scored = torch.zeros_like(tokens, dtype=torch.bool)
    scored[:, length + 2 :] = True
    return TaskSamples(tokens, scored, (BOS, *symbols(n_symbols), "|"))


@register_task("copy")
def copy_task(
    gen: torch.Generator, n: int, split: str, *, length: int = 8, n_symbols: int = 10
) -> TaskSamples:
    """``BOS x1 .. xL | x1 .. xL``: copy a random sequence; the copy's tokens count."""
    _check(length >= 1 and n_symbols >= 2, "copy", "needs length >= 1 and n_symbols >= 2")
    x = _random(gen, n, length, n_symbols)
    return _seq_to_seq(x, x, n_symbols)


@register_task("reverse")
def reverse_task(
    gen: torch.Generator, n: int, split: str, *, length: int = 8, n_symbols: int = 10
) -> TaskSamples:
    """``BOS x1 .. xL | xL .. x1``: reverse a random sequence; the output counts."""
    _check(length >= 1 and n_symbols >= 2, "reverse", "needs length >= 1 and n_symbols >= 2")
    x = _random(gen, n, length, n_symbols)
    return _seq_to_seq(x, x.flip(1), n_symbols)


@register_task("sort")
def sort_task(
    gen: torch.Generator, n: int, split: str, *, length: int = 8, n_symbols: int = 10
) -> TaskSamples:
    """``BOS x1 .. xL | sorted(x)``: sort a random sequence ascending; the output counts."""
    _check(length >= 1 and n_symbols >= 2, "sort", "needs length >= 1 and n_symbols >= 2")
    x = _random(gen, n, length, n_symbols)
    return _seq_to_seq(x, x.sort(dim=1).values, n_symbols)


@register_task("induction")
def induction_task(
    gen: torch.Generator,
    n: int,
    split: str,
    *,
    length: int = 16,
    min_length: int = 4,
    n_symbols: int = 32,
    repeats: int = 2,
) -> TaskSamples:
    """``BOS r r ...``: a sequence of uniformly random symbols repeated ``repeats`` times.

    Each sample's sequence length is drawn uniformly from ``min_length .. length``, so the
    distance back to the earlier copy varies and only content-based induction (attend to
    the token after an earlier occurrence of the current one) solves it, not a fixed
    positional offset; shorter samples are right-padded. Symbols are drawn with
    replacement (distinct symbols would allow a "not yet repeated" shortcut). Counted:
    all of copies 2.. except copy 2's first token (which follows the first copy's last
    token for the first time).
    """
    _check(
        2 <= min_length <= length and n_symbols >= 2,
        "induction",
        "needs 2 <= min_length <= length, n_symbols >= 2",
    )
    _check(repeats >= 2, "induction", "needs repeats >= 2")
    seq = torch.randint(n_symbols, (n, length), generator=gen) + 1  # ids 1..n_symbols
    lengths = torch.randint(min_length, length + 1, (n,), generator=gen)
    width = 1 + repeats * length
    tokens = torch.zeros(n, width, dtype=torch.long)
    scored = torch.zeros(n, width, dtype=torch.bool)
    real = torch.zeros(n, width, dtype=torch.bool)
    for i, L in enumerate(lengths.tolist()):
        tokens[i, 1 : 1 + repeats * L] = seq[i, :L].repeat(repeats)
        scored[i, L + 2 : 1 + repeats * L] = True
        real[i, : 1 + repeats * L] = True
    return TaskSamples(tokens, scored, (BOS, *symbols(n_symbols)), real)


@register_task("modular_addition")
def modular_addition_task(
    gen: torch.Generator,
    n: int,
    split: str,
    *,
    p: int = 13,
    train_fraction: float = 0.7,
    split_seed: int = 0,
) -> TaskSamples:
    """``BOS a + b = c`` with ``c = (a + b) mod p``; only ``c`` counts.

    The ``p * p`` pairs are split once (by ``split_seed``) into a training and a
    validation part (``train_fraction``); ``split`` draws from its own part only.
    """
    _check(
        p >= 2 and 0 < train_fraction < 1,
        "modular_addition",
        "needs p >= 2 and 0 < train_fraction < 1",
    )
    order = torch.randperm(p * p, generator=torch.Generator().manual_seed(split_seed))
    cut = max(1, min(p * p - 1, round(train_fraction * p * p)))
    pool = order[:cut] if split == "train" else order[cut:]
    pairs = pool[torch.randint(len(pool), (n,), generator=gen)]
    a, b = pairs // p, pairs % p
    c = (a + b) % p
    plus, eq = p + 1, p + 2
    tokens = torch.stack(
        [
            torch.zeros_like(a),
            a + 1,
            torch.full_like(a, plus),
            b + 1,
            torch.full_like(a, eq),
            c + 1,
        ],
        1,
    )
    scored = torch.zeros_like(tokens, dtype=torch.bool)
    scored[:, 5] = True
    return TaskSamples(tokens, scored, (BOS, *symbols(p), "+", "="))


@register_task("histogram")
def histogram_task(
    gen: torch.Generator, n: int, split: str, *, length: int = 8, n_symbols: int = 6
) -> TaskSamples:
    """``BOS x1 .. xL | c1 .. cL`` with ``ci`` the number of times ``xi`` occurs in ``x``.

    Inputs are letters (``a``, ``b``, ...), counts are ``#1`` .. ``#L``; the counts count.
    """
    _check(
        length >= 1 and 2 <= n_symbols <= 26,
        "histogram",
        "needs length >= 1 and 2 <= n_symbols <= 26",
    )
    x = _random(gen, n, length, n_symbols)
    counts = (x[:, :, None] == x[:, None, :]).sum(-1)  # [n, L], each in 1..L
    sep = n_symbols + 1
    body = torch.cat([x + 1, torch.full((n, 1), sep), counts + sep], dim=1)
    tokens = torch.cat([torch.zeros(n, 1, dtype=torch.long), body], dim=1)
    scored = torch.zeros_like(tokens, dtype=torch.bool)
    scored[:, length + 2 :] = True
    letters = [chr(ord("a") + i) for i in range(n_symbols)]
    return TaskSamples(
        tokens, scored, (BOS, *letters, "|", *[f"#{i}" for i in range(1, length + 1)])
    )
