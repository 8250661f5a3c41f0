"""The geometry metric names (torch-free, so the CLI can offer them as choices)."""

__all__ = ["METRICS"]

#: every metric ``geometry()`` can compute, in the order it reports them
METRICS = ("twonn", "gride", "density_clusters", "label_overlap", "neighbourhood_overlap")
