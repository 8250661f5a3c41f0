"""``train_probes``: a softmax-regression probe per layer, all layers fitted at once.

Method (METHODS.md "Probes"): for each layer, standardise the vectors with the training
rows' mean and (population) std (a constant feature gets std 1, as scikit-learn's
``StandardScaler``), fit a multinomial logistic regression with L2 (scikit-learn's
``LogisticRegression`` objective; two classes are a binary logistic regression, as there)
on the training rows, and score it by test accuracy. The control probe is the same
probe on control labels (:func:`~idiomlens.representations.probes.labels.control_labels`)
with the same ``C``. On an accelerator every layer and both tasks are one batched L-BFGS
problem (:func:`~idiomlens.representations.probes.solver.fit_softmax`); on a CPU each
layer is solved by SciPy's L-BFGS-B
(:func:`~idiomlens.representations.probes.solver_cpu.fit_softmax_cpu`), which was
measured faster there. Cost per iteration is two passes over the layer's training rows.

Cross-validation (``cv=k``): for each layer, ``C`` is chosen from ``Cs`` by mean accuracy
over ``k`` stratified folds of the training rows (ties: the smaller ``C``, as
``LogisticRegressionCV``); every fold and every ``C`` of every layer is again one batched
fit. The folds reuse the training split's standardisation (label-free statistics).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..._blas import map_on_threads
from .gram import preconditioner_gram
from .labels import ProbeInputError, control_labels, encode_labels, make_split, resolve_labels
from .result import ProbeResult
from .solver import SoftmaxFit, SolverConfig, fit_softmax
from .solver_cpu import fit_softmax_cpu

__all__ = ["train_probes"]

log = logging.getLogger(__name__)


def _device(device: Any) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _stack_layers(reps: Any, layers: Sequence[int], rows: Tensor, out: Tensor) -> Tensor:
    """Fill ``out[:len(layers)]`` (``[layer, row, d_model]``) with the chosen rows."""
    x = out[: len(layers)]
    for i, layer in enumerate(layers):
        v = reps.vectors(layer)
        if v.device == x.device and v.dtype == x.dtype:
            torch.index_select(v, 0, rows.to(v.device), out=x[i])
        else:
            x[i] = v[rows.to(v.device)].to(device=x.device, dtype=x.dtype)
    return x


def _layers_at_once(dev: torch.device, n_layers: int, n_rows: int, width: int, dtype) -> int:
    """How many layers are stacked and fitted together: all of them on an accelerator
    (one batched solver problem); on a CPU, whose solver goes layer by layer anyway, as
    many as fit in a quarter of its last-level cache (at least one), so that small
    layers share the stacking and standardising while large ones stay in cache."""
    if dev.type != "cpu":
        return n_layers
    per_layer = n_rows * width * torch.finfo(dtype).bits // 8
    return max(1, min(n_layers, _cpu_cache_bytes() // 4 // max(per_layer, 1)))


def _cpu_cache_bytes() -> int:
    """Size of the CPU's largest cache (Linux sysfs; 8 MiB when unknown)."""
    from pathlib import Path

    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        try:
            text = path.read_text().strip().upper()
            sizes.append(int(text.rstrip("KM")) * (1 << 20 if text.endswith("M") else 1 << 10))
        except (OSError, ValueError):
            continue
    return max(sizes, default=8 << 20)


def _map_batches(fit, batches, shape, dev, dtype, bar) -> list:
    """``[fit(batch, buffer) for batch in batches]``; on a CPU with several threads the
    batches run concurrently, one per thread (each solver pass is a matrix-vector
    product that one core saturates, so cores are better spent on different layers),
    with torch and numpy's BLAS single-threaded inside."""
    workers = min(len(batches), torch.get_num_threads()) if dev.type == "cpu" else 1
    if workers < 2:
        buffer = torch.empty(shape, device=dev, dtype=dtype)
        out = []
        for batch in batches:
            out.append(fit(batch, buffer))
            bar.update(len(batch))
        return out
    import queue

    free: queue.SimpleQueue = queue.SimpleQueue()
    for _ in range(workers):
        free.put(torch.empty(shape, device=dev, dtype=dtype))

    def run(batch: Sequence[int]) -> dict[str, Tensor]:
        buffer = free.get()
        try:
            return fit(batch, buffer)
        finally:
            free.put(buffer)
            bar.update(len(batch))

    return map_on_threads(run, batches, workers)


def _check_finite(reps: Any, x: Tensor, sums: Tensor, layers: Sequence[int], rows: Tensor) -> None:
    """Raise naming the first layer and row id with a NaN or inf (``sums``: per-feature
    sums, non-finite exactly when a summed value is, barring float overflow)."""
    bad_layers = (~torch.isfinite(sums)).any(-1).nonzero()[:, 0].tolist()
    if not bad_layers:
        return
    i = bad_layers[0]
    bad_rows = (~torch.isfinite(x[i])).any(-1).nonzero()[:, 0]
    if len(bad_rows) == 0:
        raise ProbeInputError(f"layer {layers[i]}: the vectors are too large to sum in {x.dtype}")
    bad = int(rows[int(bad_rows[0])])
    raise ProbeInputError(
        f"layer {layers[i]}: the vectors hold NaN or inf (first at row {bad}, "
        f"id {reps.row_ids[bad]!r})"
    )


#: the preconditioner's Gram uses every k-th training row, k = n_train // (this * d_model)
GRAM_ROWS_PER_FEATURE = 3


def _standardise(x: Tensor, n_train: int, check: Any) -> tuple[Tensor, Tensor, Tensor]:
    """Standardise ``x`` in place with its first ``n_train`` rows' mean and population std;
    also return the solver's preconditioner Gram ``X^T X / n`` of the standardised
    training rows (:func:`~.gram.preconditioner_gram`: int8 products on a CPU).

    The Gram uses evenly spaced training rows, all of them when there are fewer than
    ``2 * GRAM_ROWS_PER_FEATURE * d_model``: the preconditioner only has to resemble the
    Hessian, and this Gram is its one large cost (about ``3 d_model`` rows add a third
    more iterations and halve it). The variance is taken from the centred rows, so large
    offsets do not cancel. ``check(sums)`` sees the column sums of all rows first
    (finiteness).
    """
    d = x.shape[2]
    train_sums = x[:, :n_train].sum(1)
    check(train_sums + x[:, n_train:].sum(1))  # [layer, d]
    mean = train_sums / n_train
    x.sub_(mean[:, None])
    train = x[:, :n_train]
    if x.device.type == "cpu":  # a layer at a time: 18x vector_norm(dim=1) on a CPU
        std = torch.stack([(t * t).sum(0) for t in train]).div_(n_train).sqrt_()
    else:  # no [layer, row, d] temporary on an accelerator
        std = torch.linalg.vector_norm(train, dim=1).div_(n_train**0.5)
    tiny = 10 * torch.finfo(x.dtype).eps * mean.abs().clamp_min(1.0)
    std = torch.where(std > tiny, std, torch.ones_like(std))
    x.div_(std[:, None])
    step = max(1, n_train // (GRAM_ROWS_PER_FEATURE * d))
    return mean, std, preconditioner_gram(train[:, ::step])


def _folds(codes: Tensor, k: int, seed: int) -> Tensor:
    """Fold number ``0 .. k-1`` of each training row, stratified, seeded."""
    gen = torch.Generator().manual_seed(seed + 104729)
    fold = torch.empty_like(codes)
    for c in torch.unique(codes).tolist():
        rows = (codes == c).nonzero()[:, 0]
        rows = rows[torch.randperm(len(rows), generator=gen)]
        fold[rows] = torch.arange(len(rows)) % k
    return fold


def _choose_C(
    x: Tensor, codes: Tensor, n_classes: int, k: int, Cs: Sequence[float], seed, cfg, gram
):
    """Per-layer ``C`` with the best mean held-out accuracy over ``k`` folds."""
    if k < 2:
        raise ProbeInputError(f"cv needs at least 2 folds, got {k}")
    counts = torch.bincount(codes, minlength=n_classes)
    if int(counts.min()) < k:
        log.warning("cv=%d: a class has only %d training rows", k, int(counts.min()))
    fold = _folds(codes, k, seed)
    groups = []  # ordered (C, fold)
    for _ in Cs:
        for f in range(k):
            groups.append(torch.where(fold == f, torch.full_like(codes, -1), codes))
    targets = torch.stack(groups)
    C = torch.tensor([c for c in Cs for _ in range(k)], dtype=x.dtype, device=x.device)
    C = C.expand(x.shape[0], -1)
    fit = _solver(x)(x, targets, n_classes=n_classes, C=C, config=cfg, gram=gram)
    pred = fit.predict(x).cpu()  # [layer, group, row]
    held = torch.stack([fold == f for _ in Cs for f in range(k)])  # [group, row]
    right = ((pred == codes[None, None]) & held).sum(-1).double() / held.sum(-1).double()
    score = right.view(x.shape[0], len(Cs), k).mean(-1)  # [layer, C]
    best = score.argmax(-1)  # first maximum: the smallest C
    return torch.tensor([Cs[i] for i in best.tolist()], dtype=torch.float64)


def _solver(x: Tensor) -> Any:
    """The batched L-BFGS on an accelerator, SciPy's L-BFGS-B layer by layer on a CPU
    (same problems and results; see ``solver_cpu``)."""
    return fit_softmax_cpu if x.device.type == "cpu" else fit_softmax


def _accuracy(pred: Tensor, target: Tensor) -> Tensor:
    return (pred == target[None]).double().mean(-1)


def train_probes(
    reps: Any,
    labels: Any = None,
    *,
    split: tuple[Sequence[int] | Tensor, Sequence[int] | Tensor] | None = None,
    test_fraction: float = 0.25,
    control: bool = True,
    seed: int = 0,
    C: float = 1.0,
    cv: int | None = None,
    Cs: Sequence[float] | int = 10,
    layers: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    tol: float = 1e-5,
    max_iter: int = 2000,
    layers_per_batch: int | None = None,
    progress: bool = True,
) -> ProbeResult:
    """Train a linear probe (and its control probe) on every layer of ``reps``.

    Args:
        reps: a :class:`~idiomlens.representations.Representations`.
        labels: ``None`` (the ``label`` field), a field name of ``reps.labels`` (any corpus
            field, or a per-token field for ``pool="tokens"``), a sequence with a value per
            row (or per example for token rows), or ``{row id or example id: label}``.
        split: explicit ``(train_index, test_index)`` row indices; otherwise a seeded
            split with ``test_fraction`` of the rows for testing (stratified by label;
            for token rows, by example so no sentence is on both sides).
        control: also train the control probe (METHODS.md "Probes").
        seed: seeds the split, the control labels and the folds (local generators).
        C: inverse L2 strength (scikit-learn's ``C``; 1 is its default).
        cv: choose ``C`` per layer by ``cv``-fold cross-validation over ``Cs``
            (a list, or a count of log-spaced values in ``1e-4 .. 1e4``).
        layers: probe only these layers (default all of ``reps.layers``).
        device: where to fit (default CUDA when available, else CPU).
        dtype: the solver's dtype (float32; float64 for reference checks).
        tol, max_iter: L-BFGS stops a problem at ``max |grad| <= tol`` (the gradient of
            the objective divided by the training rows, as scikit-learn's ``tol``).
        layers_per_batch: fit this many layers at once (default: all of them on an
            accelerator, a cache-sized batch on a CPU); also bounds memory.
        progress: a progress bar over layer batches (when there is more than one).

    Returns:
        A :class:`ProbeResult` (``.to_dataframe()``: layer, accuracy, control_accuracy,
        selectivity, ...).

    >>> import torch
    >>> from idiomlens.representations import Representations
    >>> g = torch.Generator().manual_seed(0)
    >>> y = torch.arange(200) % 2
    >>> signal = torch.randn(200, 8, generator=g) + 3.0 * y[:, None]
    >>> reps = Representations.from_tensors({0: torch.randn(200, 8, generator=g), 1: signal},
    ...                                     labels=y.tolist())
    >>> df = train_probes(reps, progress=False).to_dataframe()
    >>> bool(df.accuracy[1] > 0.95), bool(df.accuracy[0] < 0.8), bool(df.selectivity[1] > 0.3)
    (True, True, True)
    """
    values, field_name = resolve_labels(reps, labels)
    is_tokens = reps.example_index is not None
    groups = reps.example_index if is_tokens else None
    train_idx, test_idx = make_split(
        values, split=split, test_fraction=test_fraction, seed=seed, groups=groups
    )
    classes, codes = encode_labels(values, train_idx)
    _check_classes(classes, codes, train_idx, test_idx, values, field_name)
    ctrl = (
        control_labels(codes, train_idx, test_idx, seed=seed, token_ids=reps.token_ids if is_tokens else None)
        if control
        else torch.full_like(codes, -1)
    )  # fmt: skip
    layers = tuple(reps.layers if layers is None else (int(x) for x in layers))
    missing = [x for x in layers if x not in reps.layers]
    if missing:
        raise ProbeInputError(f"layers {missing} are not in the representations {reps.layers}")
    if isinstance(Cs, int):
        Cs = [float(c) for c in torch.logspace(-4, 4, Cs, dtype=torch.float64).tolist()]
    cfg = SolverConfig(tol=tol, max_iter=max_iter)
    dev = _device(device)
    rows = torch.cat([train_idx, test_idx])
    width = reps.vectors(layers[0]).shape[1]
    size = layers_per_batch or _layers_at_once(dev, len(layers), len(rows), width, dtype)
    batches = [layers[i : i + size] for i in range(0, len(layers), size)]
    from tqdm.auto import tqdm

    def fit(batch: Sequence[int], buffer: Tensor) -> dict[str, Tensor]:
        x = _stack_layers(reps, batch, rows, buffer)
        return _fit_batch(reps, x, batch, rows, len(train_idx), codes, ctrl, classes, C, cv, Cs, seed, cfg)  # fmt: skip

    shape = (min(size, len(layers)), len(rows), width)
    bar = tqdm(
        total=len(layers), desc="probes", unit="layer", disable=not progress or len(batches) < 2
    )
    parts = _map_batches(fit, batches, shape, dev, dtype, bar)
    bar.close()
    fits = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    majority = int(torch.bincount(codes[train_idx]).argmax())
    params = {
        "test_fraction": test_fraction, "seed": seed, "C": C, "cv": cv,
        "Cs": list(Cs) if cv else None, "control": control, "tol": tol, "max_iter": max_iter,
        "explicit_split": split is not None, "dtype": str(dtype), "device": str(dev),
    }  # fmt: skip
    test_group = reps.example_index[test_idx] if is_tokens else test_idx
    return ProbeResult(
        layers=layers,
        ids=tuple(reps.row_ids[i] for i in test_idx.tolist()),
        classes=classes,
        label_field=field_name,
        site=reps.site,
        pool=reps.pool,
        train_index=train_idx,
        test_index=test_idx,
        test_group=test_group.long().clone(),
        test_target=codes[test_idx],
        control_target=ctrl[test_idx],
        majority_accuracy=float((codes[test_idx] == majority).double().mean()),
        params=params,
        meta={
            "representations": dict(reps.meta),
            "n_train": len(train_idx),
            "n_test": len(test_idx),
        },
        **fits,
    )


def _check_classes(classes, codes, train_idx, test_idx, values, field_name) -> None:
    what = f"labels {field_name!r}" if field_name else "the labels"
    n_all = len(set(values))
    if n_all < 2:
        raise ProbeInputError(f"{what}: one class only ({values[0]!r}); a probe needs two")
    if len(train_idx) < n_all:
        raise ProbeInputError(
            f"{what}: the training split has {len(train_idx)} rows for {n_all} classes; "
            "a probe needs at least one training row per class"
        )
    if len(classes) < 2:
        raise ProbeInputError(
            f"{what}: the training split has one class only ({classes[0]!r}); a probe needs two"
        )
    missing = test_idx[codes[test_idx] < 0].tolist()  # test rows of classes never trained on
    unseen = sorted({values[i] for i in missing}, key=str)
    if unseen:
        log.warning("%s: test classes %s never occur in the training split", what, unseen)


def _fit_batch(reps, x, layers, rows, n_train, codes, ctrl, classes, C, cv, Cs, seed, cfg):
    """Fit probe and control on ``x`` (``[layer, train rows then test rows, d_model]``,
    standardised here in place); per-layer tensors keyed by ProbeResult field."""
    mean, std, gram = _standardise(
        x, n_train, lambda sums: _check_finite(reps, x, sums, layers, rows)
    )
    x_train, x_test = x[:, :n_train], x[:, n_train:]
    train_idx, test_idx = rows[:n_train], rows[n_train:]
    y_train, k = codes[train_idx], len(classes)
    if cv:
        C_layer = _choose_C(x_train, y_train, k, cv, Cs, seed, cfg, gram)
    else:
        C_layer = torch.full((len(layers),), float(C), dtype=torch.float64)
    control = bool((ctrl >= 0).any())
    targets = torch.stack([y_train, ctrl[train_idx]] if control else [y_train])
    C_groups = C_layer[:, None].expand(-1, targets.shape[0]).to(device=x.device, dtype=x.dtype)
    fit = _solver(x)(x_train, targets, n_classes=k, C=C_groups, config=cfg, gram=gram)
    pred_train, pred_test = fit.predict(x_train).cpu(), fit.predict(x_test).cpu()
    return _collect(
        fit,
        pred_train,
        pred_test,
        targets.cpu(),
        codes[test_idx],
        ctrl[test_idx],
        C_layer,
        mean,
        std,
    )


def _collect(
    fit: SoftmaxFit, pred_train, pred_test, targets, y_test, ctrl_test, C_layer, mean, std
):
    n_layer = pred_train.shape[0]
    nan = torch.full((n_layer,), math.nan, dtype=torch.float64)

    def per_task(t: Tensor, fill: Any) -> Tensor:  # [layer, group] -> [layer, 2]
        t = t.cpu()
        if t.shape[1] == 2:
            return t
        return torch.cat([t, torch.full_like(t, fill)], 1)

    control = targets.shape[0] == 2
    return {
        "accuracy": _accuracy(pred_test[:, 0], y_test),
        "control_accuracy": _accuracy(pred_test[:, 1], ctrl_test) if control else nan,
        "train_accuracy": _accuracy(pred_train[:, 0], targets[0]),
        "control_train_accuracy": _accuracy(pred_train[:, 1], targets[1]) if control else nan,
        "C": C_layer,
        "n_iter": per_task(fit.n_iter, -1),
        "grad_norm": per_task(fit.grad_norm.double(), math.nan),
        "loss": per_task(fit.loss.double(), math.nan),
        "converged": per_task(fit.converged, False),
        "test_pred": pred_test[:, 0],
        "control_pred": pred_test[:, 1] if control else torch.full_like(pred_test[:, 0], -1),
        "coef": fit.weight[:, 0].cpu().clone(),
        "intercept": fit.bias[:, 0].cpu().clone(),
        "feature_mean": mean.cpu(),
        "feature_std": std.cpu(),
    }
