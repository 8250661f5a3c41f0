"""neighbourhood_overlap_points: per-row overlaps equal a naive kNN computation, NaN for
dropped duplicates, and their mean is neighbourhood_overlap."""

from __future__ import annotations

import torch

from idiomlens.representations import Representations, neighbourhood_overlap
from idiomlens.representations.geometry import neighbourhood_overlap_points


def _naive(x: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    def nn(z):
        d = torch.cdist(z.double(), z.double())
        d.fill_diagonal_(float("inf"))
        return d.argsort(dim=1, stable=True)[:, :k]

    a, b = nn(x), nn(y)
    return torch.tensor([len(set(a[i].tolist()) & set(b[i].tolist())) / k for i in range(len(x))])


def test_per_row_overlap_matches_a_naive_loop_and_the_mean():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 6, generator=g)
    y = x + 0.7 * torch.randn(40, 6, generator=g)
    x[7] = x[3]  # an exact duplicate row in one space: dropped from both
    a = Representations.from_tensors({0: x, 1: y})
    b = Representations.from_tensors({0: y, 1: x + 0.1 * torch.randn(40, 6, generator=g)})
    layers, per_row = neighbourhood_overlap_points(a, b, k=5, progress=False)
    assert layers == (0, 1) and per_row.shape == (40, 2)
    assert per_row[7, 0].isnan() and not per_row[:, 1].isnan().any()
    keep = [i for i in range(40) if i != 7]
    expected = _naive(x[keep], y[keep], 5)
    torch.testing.assert_close(per_row[keep, 0], expected.double())
    frame = neighbourhood_overlap(a, b, k=5, progress=False)
    torch.testing.assert_close(
        torch.nanmean(per_row, 0), torch.tensor(frame["overlap"].values, dtype=torch.float64)
    )
