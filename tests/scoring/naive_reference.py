"""A deliberately naive, loop-by-loop reading of METHODS.md, used as the test oracle.

One example, one head, one ``T x T`` pattern (real block only), plain Python over
rows and columns. Nothing here is shared with ``idiomlens.scoring``.
"""

from __future__ import annotations

import math
from collections import Counter

import torch


def _mean(xs):
    return sum(xs) / len(xs) if xs else 0.0


def _std(xs):
    if len(xs) < 2:
        return 0.0
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _argmax(pairs):
    """pairs: list of (index, value) in increasing index; first maximum wins."""
    best_i, best_v = None, None
    for i, v in pairs:
        if best_v is None or v > best_v:
            best_i, best_v = i, v
    return best_i


def _mode(xs):
    counts = Counter(xs)
    top = max(counts.values())
    m = min(x for x, c in counts.items() if c == top)
    return m, top


def _top(pairs, k):
    """Indices of the top-k (value desc, index asc)."""
    return [i for i, _ in sorted(pairs, key=lambda iv: (-iv[1], iv[0]))[:k]]


def _row(A, q):
    return [(k, A[q][k]) for k in range(q + 1)]


def _col(A, k, T):
    return [(q, A[q][k]) for q in range(k, T)]


def idiom_features(A, s, e, p0, share=None):
    """[mean, neg_std, max, phrase, contribution] of one head (A: T x T nested list)."""
    T = len(A)
    items = set(range(s, e + 1))
    vals = [A[q][k] for q in range(T) for k in range(p0, q + 1) if q in items or k in items]
    # max
    rq = [_argmax(_row(A, q)) for q in range(s, T)]
    m, c = _mode(rq)
    q2k = c / (T - s) if m in items else 0.0
    ck = [_argmax(_col(A, k, T)) for k in range(p0, e + 1)]
    m, c = _mode(ck)
    k2q = c / (e - p0 + 1) if m in items else 0.0
    max_f = (q2k + k2q) / 2
    # phrase
    n = e - s + 1
    fs = []
    for q in range(s, T):
        K = min(q - s + 1, n)
        top = _top(_row(A, q), K)
        fs.append(sum(t in items for t in top) / K)
    gs = []
    for col in range(p0, e + 1):
        K = e - col + 1 if col >= s else n
        top = _top(_col(A, col, T), K)
        gs.append(sum(t in items for t in top) / K)
    phrase = (_mean(fs) + _mean(gs)) / 2
    contrib = _mean([share[p] for p in items]) if share is not None else 0.0
    return [_mean(vals), -_std(vals), max_f, phrase, contrib]


def literal_features(A, s, e, p0, share=None):
    T = len(A)
    L = [p for p in range(p0, T) if not (s <= p <= e)]
    Ls = set(L)
    vals = [A[q][k] for q in L for k in L if k <= q]
    if L:
        m, c = _mode([_argmax(_row(A, q)) for q in L])
        rows = c / len(L) if m in Ls else 0.0
        m, c = _mode([_argmax(_col(A, k, T)) for k in L])
        cols = c / len(L) if m in Ls else 0.0
    else:
        rows = cols = 0.0
    fs = []
    for q in range(p0, T):
        K = sum(1 for k in L if k <= q)
        if K == 0:
            continue
        fs.append(sum(t in Ls for t in _top(_row(A, q), K)) / K)
    gs = []
    for col in range(p0, T):
        K = sum(1 for q in L if q >= col)
        if K == 0:
            continue
        gs.append(sum(t in Ls for t in _top(_col(A, col, T), K)) / K)
    phrase = (_mean(fs) + _mean(gs)) / 2
    contrib = _mean([share[p] for p in L]) if share is not None else 0.0
    return [_mean(vals), -_std(vals), (rows + cols) / 2, phrase, contrib]


def naive_share(z, W_O):
    """share[p][h] from z [T, H, d_head] and W_O [H, d_head, d_model], directly."""
    T, H = z.shape[0], z.shape[1]
    out = []
    for p in range(T):
        norms = [
            torch.linalg.vector_norm(z[p, h].double() @ W_O[h].double()).item() for h in range(H)
        ]
        tot = sum(norms)
        out.append([x / tot if tot > 0 else 0.0 for x in norms])
    return out


def naive_example(model, tokens, s, e, p0, kind, layers=None):
    """Features [layer, head, 5] of one example via run_with_cache, like the thesis."""
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    names += [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(torch.tensor([tokens]), names_filter=lambda n: n in names)
    fn = idiom_features if kind == "idiom" else literal_features
    layers = range(model.cfg.n_layers) if layers is None else layers
    out = []
    for layer in layers:
        pat = cache[f"blocks.{layer}.attn.hook_pattern"][0].float()
        share = naive_share(
            cache[f"blocks.{layer}.attn.hook_z"][0], model.blocks[layer].attn.W_O.detach()
        )
        row = []
        for h in range(model.cfg.n_heads):
            A = pat[h].tolist()
            row.append(fn(A, s, e, p0, [sh[h] for sh in share]))
        out.append(row)
    return torch.tensor(out)
