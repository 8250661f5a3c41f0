"""``ProbeResult``: per-layer probe accuracy, control accuracy and the test predictions."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..._io import Result

__all__ = ["ProbeResult", "TASKS"]

#: The two tasks of every probe, in the order of the ``[layer, task]`` fields.
TASKS = ("probe", "control")


@dataclass(kw_only=True)
class ProbeResult(Result):
    """Linear probes of one label on every layer (METHODS.md "Probes").

    Accuracies are over the test rows; ``selectivity = accuracy - control_accuracy``.
    Fields of shape ``[layer, task]`` hold the probe (task 0) and the control probe
    (task 1); without a control task its entries are NaN / -1 / ``False``.

    Attributes:
        layers: the probed layers; ``ids``: the test rows' ids (``reps.row_ids``).
        accuracy, control_accuracy, train_accuracy, control_train_accuracy: ``[layer]``.
        C: ``[layer]`` the inverse L2 strength used (chosen by cross-validation if ``cv``).
        n_iter, grad_norm, loss, converged: ``[layer, task]`` of the L-BFGS solver
            (``loss`` is the objective divided by the number of training rows).
        train_index, test_index: row indices of the split; ``test_group``: the example
            index of each test row (bootstrap resamples whole examples).
        test_target, test_pred, control_target, control_pred: class codes into
            ``classes`` (``-1``: a label never seen in training); preds are ``[layer, test]``.
        coef, intercept: the probe in standardised coordinates, ``[layer, out, d_model]``
            (``out`` is 1 for two classes: the logit of ``classes[1]``); feature_mean and
            feature_std ``[layer, d_model]`` standardise new vectors.
        majority_accuracy: test accuracy of always predicting the training majority class.
    """

    layers: tuple[int, ...]
    ids: tuple[str, ...]
    classes: tuple[Any, ...]
    label_field: str | None
    site: str
    pool: str
    accuracy: Float[Tensor, " layer"]
    control_accuracy: Float[Tensor, " layer"]
    train_accuracy: Float[Tensor, " layer"]
    control_train_accuracy: Float[Tensor, " layer"]
    C: Float[Tensor, " layer"]
    n_iter: Int[Tensor, "layer task"]
    grad_norm: Float[Tensor, "layer task"]
    loss: Float[Tensor, "layer task"]
    converged: Bool[Tensor, "layer task"]
    train_index: Int[Tensor, " train"]
    test_index: Int[Tensor, " test"]
    test_group: Int[Tensor, " test"]
    test_target: Int[Tensor, " test"]
    test_pred: Int[Tensor, "layer test"]
    control_target: Int[Tensor, " test"]
    control_pred: Int[Tensor, "layer test"]
    coef: Float[Tensor, "layer out d_model"]
    intercept: Float[Tensor, "layer out"]
    feature_mean: Float[Tensor, "layer d_model"]
    feature_std: Float[Tensor, "layer d_model"]
    majority_accuracy: float
    params: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layers = tuple(int(x) for x in self.layers)
        self.ids, self.classes = tuple(self.ids), tuple(self.classes)

    @property
    def selectivity(self) -> Float[Tensor, " layer"]:
        """``accuracy - control_accuracy`` per layer (NaN without a control task)."""
        return self.accuracy - self.control_accuracy

    @property
    def has_control(self) -> bool:
        return bool((self.control_pred >= 0).any())

    def correct(self, task: str = "probe") -> Bool[Tensor, "layer test"]:
        """Whether each test row was predicted right, per layer (``task``: probe/control)."""
        if task == "probe":
            return self.test_pred == self.test_target[None]
        if task == "control":
            return self.control_pred == self.control_target[None]
        raise ValueError(f"task is one of {TASKS}, not {task!r}")

    def layer_position(self, layer: int) -> int:
        """Index of ``layer`` along the layer axis."""
        if int(layer) not in self.layers:
            raise KeyError(f"layer {layer} was not probed; have {self.layers}")
        return self.layers.index(int(layer))

    def predict(self, vectors: Float[Tensor, "row d_model"], layer: int) -> Int[Tensor, " row"]:
        """Class codes (into :attr:`classes`) the probe of ``layer`` gives new vectors."""
        i = self.layer_position(layer)
        x = (vectors.to(self.coef) - self.feature_mean[i]) / self.feature_std[i]
        z = x @ self.coef[i].T + self.intercept[i]
        return (z[:, 0] > 0).long() if z.shape[1] == 1 else z.argmax(-1)

    def to_dataframe(self) -> Any:
        """One row per layer: ``layer, accuracy, control_accuracy, selectivity`` and the
        training accuracies, ``C``, solver iterations and convergence flags."""
        import pandas as pd

        return pd.DataFrame(
            {
                "layer": list(self.layers),
                "accuracy": self.accuracy.tolist(),
                "control_accuracy": self.control_accuracy.tolist(),
                "selectivity": self.selectivity.tolist(),
                "train_accuracy": self.train_accuracy.tolist(),
                "control_train_accuracy": self.control_train_accuracy.tolist(),
                "majority_accuracy": [self.majority_accuracy] * len(self.layers),
                "C": self.C.tolist(),
                "n_iter": self.n_iter[:, 0].tolist(),
                "control_n_iter": self.n_iter[:, 1].tolist(),
                "converged": self.converged[:, 0].tolist(),
                "control_converged": self.converged[:, 1].tolist(),
            }
        )

    def plot(self, **kwargs: Any) -> Any:
        """Accuracy and control accuracy against layer (:func:`idiomlens.viz.probes.plot_probes`)."""
        from ...viz.probes import plot_probes

        return plot_probes(self, **kwargs)

    def __repr__(self) -> str:
        best = int(self.accuracy.argmax()) if len(self.layers) else 0
        return (
            f"ProbeResult(label={self.label_field!r}, classes={len(self.classes)}, "
            f"layers={len(self.layers)}, test={len(self.ids)}, best layer "
            f"{self.layers[best] if self.layers else None}: {float(self.accuracy.max()):.3f})"
        )

    @classmethod
    def merge_layers(cls, parts: list[ProbeResult]) -> ProbeResult:
        """Join results of the same split computed on disjoint groups of layers."""
        if not parts:
            raise ValueError("cannot merge zero ProbeResults")
        first = parts[0]
        for p in parts[1:]:
            if p.ids != first.ids or p.classes != first.classes:
                raise ValueError("ProbeResults to merge must share the split and the classes")
        merged: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            values = [getattr(p, f.name) for p in parts]
            if f.name == "layers":
                merged[f.name] = tuple(x for v in values for x in v)
            elif f.name in _PER_LAYER:
                merged[f.name] = torch.cat(values, 0)
            else:
                merged[f.name] = values[0]
        return cls(**merged)


_PER_LAYER = {
    f.name
    for f in dataclasses.fields(ProbeResult)
    if f.name
    in (
        "accuracy control_accuracy train_accuracy control_train_accuracy C n_iter grad_norm "
        "loss converged test_pred control_pred coef intercept feature_mean feature_std"
    ).split()
}
