"""Low-dimensional projections of one layer's rows, for plots: PCA, t-SNE, UMAP.

* ``pca``: exact principal components of the centred rows in float64 (eigenvectors of
  the smaller of the Gram and covariance matrices), each component's sign fixed so that
  its largest-magnitude coordinate is positive (deterministic; the components equal
  scikit-learn's ``PCA`` up to sign). ``df.attrs["explained_variance_ratio"]`` holds the
  components' share of the total variance.
* ``tsne``: scikit-learn's ``TSNE`` (``init="pca"``, ``random_state=seed``; perplexity
  ``min(30, (N - 1) / 3)`` unless given).
* ``umap``: ``umap.UMAP`` from the optional ``umap-learn`` package (a clear error when
  it is not installed).
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["project", "pca", "METHODS", "COORDS"]

METHODS = ("pca", "tsne", "umap")
COORDS = ("x", "y", "z")


def pca(rows: Float[Tensor, "row dim"], dims: int = 2) -> tuple[Tensor, Tensor]:
    """``(coords [row, dims], explained_variance_ratio [dims])`` of the centred rows.

    >>> import torch
    >>> x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [4.0, 0.1]])
    >>> coords, ratio = pca(x, dims=1)
    >>> [round(v, 2) + 0.0 for v in coords[:, 0].tolist()], ratio.item() > 0.99
    ([-2.0, 0.0, 2.0], True)
    """
    x = rows.double()
    x = x - x.mean(0, keepdim=True)
    n, d = x.shape
    if dims > min(n, d):
        raise ValueError(f"cannot take {dims} components of {n} rows in {d} dimensions")
    if n <= d:
        evals, evecs = torch.linalg.eigh(x @ x.T)  # ascending
        evals, evecs = evals.flip(0)[:dims].clamp(min=0), evecs.flip(1)[:, :dims]
        coords = evecs * evals.sqrt()
    else:
        evals, evecs = torch.linalg.eigh(x.T @ x)
        evals, evecs = evals.flip(0)[:dims].clamp(min=0), evecs.flip(1)[:, :dims]
        coords = x @ evecs
    rows_idx = coords.abs().argmax(0)
    signs = torch.sign(coords[rows_idx, torch.arange(dims)])
    coords = coords * torch.where(signs == 0, 1.0, signs)
    total = x.pow(2).sum()
    ratio = evals / total if total > 0 else torch.zeros(dims, dtype=torch.float64)
    return coords.float(), ratio.float()


def _tsne(x: Any, dims: int, seed: int, **kwargs: Any) -> Any:
    from sklearn.manifold import TSNE

    kwargs.setdefault("perplexity", min(30.0, max(1.0, (len(x) - 1) / 3)))
    return TSNE(n_components=dims, init="pca", random_state=seed, **kwargs).fit_transform(x)


def _umap(x: Any, dims: int, seed: int, **kwargs: Any) -> Any:
    try:
        import umap
    except ImportError:
        raise ImportError(
            "method='umap' needs the optional package umap-learn (pip install umap-learn); "
            "use method='pca' or 'tsne' without it"
        ) from None
    return umap.UMAP(n_components=dims, random_state=seed, **kwargs).fit_transform(x)


def project(
    reps: Any, layer: int, *, method: str = "pca", dims: int = 2, seed: int = 0, **kwargs: Any
) -> Any:
    """``reps.to_dataframe()`` with the rows of ``layer`` projected to ``dims`` (1..3)
    coordinates ``x``, ``y``, ``z`` (first ``dims`` of them), plus ``layer`` and ``method``.

    ``kwargs`` go to ``TSNE`` / ``UMAP``.

    >>> import torch
    >>> from idiomlens.representations import Representations
    >>> reps = Representations.from_tensors({0: torch.randn(6, 4, generator=torch.Generator().manual_seed(0))},
    ...                                     labels=list("aabbcc"))
    >>> project(reps, 0).columns.tolist()
    ['row_id', 'id', 'label', 'x', 'y', 'layer', 'method']
    """
    if method not in METHODS:
        raise ValueError(f"unknown projection {method!r}; methods: {', '.join(METHODS)}")
    if not 1 <= dims <= 3:
        raise ValueError(f"dims must be 1, 2 or 3 (plot coordinates), got {dims}")
    rows = reps.vectors(layer).float()
    if rows.shape[0] < 2:
        raise ValueError(f"layer {layer}: {rows.shape[0]} row(s); a projection needs at least 2")
    df = reps.to_dataframe()
    if method == "pca":
        coords, ratio = pca(rows, dims)
        df.attrs["explained_variance_ratio"] = ratio.tolist()
        values = coords.numpy()
    else:
        fn = _tsne if method == "tsne" else _umap
        values = fn(rows.numpy(), dims, seed, **kwargs)
    for i in range(dims):
        df[COORDS[i]] = values[:, i]
    df["layer"] = int(layer)
    df["method"] = method
    return df
