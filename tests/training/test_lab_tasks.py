"""The task registry and each built-in task's samples, checked against a plain-Python
statement of the task on decoded symbols."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from idiomlens.models.tokenizers import BOS
from idiomlens.training.lab import TASKS, TaskSamples, get_task, register_task


def _draw(name, n=16, split="train", seed=0, **params):
    s = get_task(name)(torch.Generator().manual_seed(seed), n, split, **params)
    real = s.real if s.real is not None else torch.ones_like(s.scored)
    rows = []
    for tok, sc, re in zip(s.tokens.tolist(), s.scored.tolist(), real.tolist(), strict=True):
        n_real = sum(re)
        rows.append(([s.vocab[t] for t in tok[:n_real]], [i for i in range(n_real) if sc[i]]))
    return s, rows


def _halves(symbols):
    body = symbols[1:]
    cut = body.index("|")
    return body[:cut], body[cut + 1 :]


@pytest.mark.parametrize(
    ("name", "rule"),
    [("copy", lambda x: x), ("reverse", lambda x: x[::-1]), ("sort", lambda x: sorted(x, key=int))],
)
def test_seq_to_seq_tasks_follow_their_rule(name, rule):
    s, rows = _draw(name, length=5, n_symbols=7)
    assert s.vocab[0] == BOS and s.tokens.shape == (16, 1 + 5 + 1 + 5)
    for symbols, scored in rows:
        x, y = _halves(symbols)
        assert y == rule(x)
        assert scored == list(range(7, 12))  # exactly the output positions count


def test_histogram_counts_each_symbol():
    _, rows = _draw("histogram", length=6, n_symbols=3)
    for symbols, scored in rows:
        x, y = _halves(symbols)
        counts = Counter(x)
        assert y == [f"#{counts[c]}" for c in x]
        assert scored == list(range(8, 14))


def test_modular_addition_and_its_disjoint_splits():
    p = 7
    _, rows = _draw("modular_addition", n=200, p=p, train_fraction=0.6)
    _, val = _draw("modular_addition", n=200, split="val", seed=1, p=p, train_fraction=0.6)
    pairs = {}
    for split_rows, key in ((rows, "train"), (val, "val")):
        for symbols, scored in split_rows:
            _, a, plus, b, eq, c = symbols
            assert (plus, eq) == ("+", "=") and int(c) == (int(a) + int(b)) % p
            assert scored == [5]
            pairs.setdefault(key, set()).add((a, b))
    assert not pairs["train"] & pairs["val"]
    assert len(pairs["train"] | pairs["val"]) > 0.9 * p * p


def test_induction_repeats_random_symbols_with_varying_period():
    s, rows = _draw("induction", n=64, length=8, min_length=3, n_symbols=10)
    periods = set()
    for symbols, scored in rows:
        body = symbols[1:]
        half = len(body) // 2
        assert body[:half] == body[half:]
        assert scored == list(range(half + 2, 2 * half + 1))  # copy 2 but its first token
        periods.add(half)
    assert periods == set(range(3, 9))
    assert not (s.scored & ~s.real).any()


def test_a_new_task_is_one_decorated_function_and_params_are_checked():
    @register_task("alternate")
    def alternate(gen: torch.Generator, n: int, split: str, *, length: int = 4) -> TaskSamples:
        """``BOS 1 2 1 2 ...``: every token but the first counts."""
        rows = [[1 + i % 2 for i in range(length)] for _ in range(n)]
        return TaskSamples.from_rows(rows, [range(2, length + 1)] * n, [BOS, "a", "b"])

    try:
        assert get_task("alternate").defaults == {"length": 4}
        assert get_task("alternate")(torch.Generator(), 3, "train").tokens.tolist()[0] == [
            0,
            1,
            2,
            1,
            2,
        ]
    finally:
        del TASKS["alternate"]
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        get_task("nope")
    with pytest.raises(TypeError, match="signature"):
        register_task("bad")(lambda gen, n, split, x: None)


def test_samples_are_deterministic_per_seed():
    a, _ = _draw("copy", seed=3)
    b, _ = _draw("copy", seed=3)
    c, _ = _draw("copy", seed=4)
    assert torch.equal(a.tokens, b.tokens) and not torch.equal(a.tokens, c.tokens)
