"""``Representations``: vectors of one site and pool, per layer, with ids and labels.

One matrix per layer, ``[row, d_model]``: a row is an example (pools ``last``,
``idiom_last``, ``mean``, ``idiom``, ``literal``) or a token (pool ``tokens``, with
``token_ids``, ``example_index`` and ``positions`` per row). Labels are per row: for a
token pool the example's labels are repeated on its tokens, beside any token-level
fields. Saved as one safetensors file per layer, read lazily (a layer is loaded the first
time :meth:`Representations.vectors` asks for it), so 30 layers of a 14k-prompt corpus
never need to sit in memory at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxtyping import Float, Int
from safetensors.torch import load_file, save_file
from torch import Tensor

from .._io import atomic_write_json

__all__ = ["Representations", "LAYER_FILE", "INDEX_FILE"]

INDEX_FILE = "representations.json"
TOKENS_FILE = "tokens.safetensors"


def LAYER_FILE(layer: int) -> str:  # noqa: N802 - a file-name template
    """The file holding ``layer``'s vectors inside a saved folder."""
    return f"layer_{layer:03d}.safetensors"


def _as_label_dict(labels: Any, n_rows: int) -> dict[str, tuple]:
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        labels = {"label": labels}
    out = {}
    for name, values in labels.items():
        values = tuple(values.tolist() if isinstance(values, Tensor) else values)
        if len(values) != n_rows:
            raise ValueError(f"label {name!r} has {len(values)} values for {n_rows} rows")
        out[str(name)] = values
    return out


class Representations:
    """Per-layer vectors ``[row, d_model]`` of one site and pool, with ids and labels.

    Attributes:
        layers: the layers held, ascending.
        ids: example ids (one per row, except for ``pool="tokens"``: one per example).
        labels: ``{name: values}``, one value per row.
        site, pool: what was extracted (METHODS.md "Representations").
        meta: provenance (model, processing, dtype, corpus hash, parameters, version).
        token_ids, example_index, positions: ``[row]`` for ``pool="tokens"``, else ``None``.

    >>> import torch
    >>> reps = Representations.from_tensors({0: torch.zeros(3, 4), 1: torch.ones(3, 4)},
    ...                                     labels=["a", "b", "a"])
    >>> reps.layers, tuple(reps.vectors(1).shape), reps.labels["label"]
    ((0, 1), (3, 4), ('a', 'b', 'a'))
    """

    def __init__(
        self,
        *,
        layers: Sequence[int],
        ids: Sequence[str],
        site: str,
        pool: str,
        labels: Mapping[str, Sequence[Any]] | Sequence[Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        tensors: Mapping[int, Tensor] | None = None,
        root: str | Path | None = None,
        token_ids: Int[Tensor, " row"] | None = None,
        example_index: Int[Tensor, " row"] | None = None,
        positions: Int[Tensor, " row"] | None = None,
    ) -> None:
        self.layers = tuple(sorted(int(x) for x in layers))
        self.ids = tuple(str(i) for i in ids)
        self.site, self.pool = site, pool
        self.meta = dict(meta or {})
        self.token_ids, self.example_index, self.positions = token_ids, example_index, positions
        self._tensors: dict[int, Tensor] = {int(k): v for k, v in (tensors or {}).items()}
        self._root = Path(root) if root is not None else None
        if self._root is None and set(self._tensors) != set(self.layers):
            raise ValueError(f"tensors for layers {sorted(self._tensors)}, expected {self.layers}")
        self.labels = _as_label_dict(labels, self.n_rows)

    # ---- construction ----------------------------------------------------------------

    @classmethod
    def from_tensors(
        cls,
        tensors: Mapping[int, Float[Tensor, "row d_model"]],
        *,
        ids: Sequence[str] | None = None,
        labels: Mapping[str, Sequence[Any]] | Sequence[Any] | None = None,
        site: str = "custom",
        pool: str = "custom",
        meta: Mapping[str, Any] | None = None,
    ) -> Representations:
        """Wrap in-memory matrices (one per layer, same number of rows)."""
        if not tensors:
            raise ValueError("from_tensors needs at least one layer")
        rows = {int(k): int(v.shape[0]) for k, v in tensors.items()}
        if len(set(rows.values())) != 1 or any(v.dim() != 2 for v in tensors.values()):
            raise ValueError(f"every layer must be a [row, d_model] matrix with equal rows: {rows}")
        n = next(iter(rows.values()))
        ids = tuple(ids) if ids is not None else tuple(str(i) for i in range(n))
        if len(ids) != n:
            raise ValueError(f"{len(ids)} ids for {n} rows")
        return cls(
            layers=list(tensors),
            ids=ids,
            site=site,
            pool=pool,
            labels=labels,
            meta=meta,
            tensors=tensors,
        )

    # ---- access ----------------------------------------------------------------------

    @property
    def n_rows(self) -> int:
        """Number of rows (examples, or tokens for ``pool="tokens"``)."""
        if self.example_index is not None:
            return int(self.example_index.shape[0])
        return len(self.ids)

    @property
    def row_ids(self) -> tuple[str, ...]:
        """An id per row: the example id, or ``"{id}@{position}"`` for token rows."""
        if self.example_index is None:
            return self.ids
        return tuple(
            f"{self.ids[e]}@{p}"
            for e, p in zip(self.example_index.tolist(), self.positions.tolist(), strict=True)
        )

    def vectors(self, layer: int) -> Float[Tensor, "row d_model"]:
        """The ``[row, d_model]`` matrix of ``layer`` (loaded from disk on first use)."""
        layer = int(layer)
        if layer not in self.layers:
            raise KeyError(f"layer {layer} not extracted; have {self.layers}")
        if layer not in self._tensors:
            assert self._root is not None
            self._tensors[layer] = load_file(self._root / LAYER_FILE(layer))["vectors"]
        return self._tensors[layer]

    def to_dataframe(self) -> Any:
        """One row per vector row: ``row_id``, ``id`` (the example's), every label, and
        ``token_id`` / ``position`` for token rows (no vectors; see :meth:`project`)."""
        import pandas as pd

        if self.example_index is None:
            data: dict[str, Any] = {"row_id": list(self.ids), "id": list(self.ids)}
        else:
            data = {
                "row_id": list(self.row_ids),
                "id": [self.ids[e] for e in self.example_index.tolist()],
                "token_id": self.token_ids.tolist(),
                "position": self.positions.tolist(),
            }
        for name, values in self.labels.items():
            data.setdefault(name, list(values))
        return pd.DataFrame(data)

    def project(
        self, layer: int, method: str = "pca", dims: int = 2, *, seed: int = 0, **kwargs: Any
    ) -> Any:
        """Project ``layer``'s rows to ``dims`` dimensions: a DataFrame of
        :meth:`to_dataframe` plus columns ``x``, ``y`` (``z``, ...), ``layer``, ``method``.

        ``method``: ``"pca"`` (``torch.pca_lowrank``, centred, exact rank), ``"tsne"``
        (scikit-learn), ``"umap"`` (``umap-learn``, if installed). See
        :func:`idiomlens.representations.project.project`.
        """
        from .project import project

        return project(self, layer, method=method, dims=dims, seed=seed, **kwargs)

    def plot(
        self,
        label: str | None = None,
        *,
        method: str = "pca",
        layers: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A plotly scatter of the projected rows coloured by ``label``, with a layer
        slider (see :func:`idiomlens.viz.representations.plot_projection`)."""
        from ..viz.representations import plot_projection

        return plot_projection(self, label=label, method=method, layers=layers, **kwargs)

    def __repr__(self) -> str:
        return (
            f"Representations(site={self.site!r}, pool={self.pool!r}, layers={self.layers}, "
            f"rows={self.n_rows}, labels={sorted(self.labels)})"
        )

    # ---- persistence -----------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write one safetensors file per layer plus ``representations.json``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for layer in self.layers:
            save_file({"vectors": self.vectors(layer).contiguous().cpu()}, path / LAYER_FILE(layer))
        if self.example_index is not None:
            save_file(
                {
                    "token_ids": self.token_ids,
                    "example_index": self.example_index,
                    "positions": self.positions,
                },
                path / TOKENS_FILE,
            )
        atomic_write_json(path / INDEX_FILE, self.index_dict())
        return path

    def index_dict(
        self, *, ids: Sequence[str] | None = None, labels: Mapping[str, Sequence[Any]] | None = None
    ) -> dict[str, Any]:
        """The JSON index of a saved folder (``ids`` / ``labels`` replace this object's)."""
        labels = self.labels if labels is None else labels
        return {
            "type": "Representations",
            "layers": list(self.layers),
            "ids": list(self.ids if ids is None else ids),
            "site": self.site,
            "pool": self.pool,
            "meta": self.meta,
            "labels": {k: list(v) for k, v in labels.items()},
        }

    @classmethod
    def load(cls, path: str | Path) -> Representations:
        """Open a saved folder; layers are read lazily by :meth:`vectors`."""
        path = Path(path)
        if not (path / INDEX_FILE).is_file():
            raise FileNotFoundError(f"no saved Representations in {path} (no {INDEX_FILE})")
        index = json.loads((path / INDEX_FILE).read_text())
        missing = [x for x in index["layers"] if not (path / LAYER_FILE(x)).is_file()]
        if missing:
            raise FileNotFoundError(f"{path}: missing layer files for layers {missing}")
        tokens = load_file(path / TOKENS_FILE) if (path / TOKENS_FILE).is_file() else {}
        return cls(
            layers=index["layers"],
            ids=index["ids"],
            site=index["site"],
            pool=index["pool"],
            labels=index["labels"],
            meta=index["meta"],
            root=path,
            **tokens,
        )
