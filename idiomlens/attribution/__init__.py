"""attribution (in progress)."""
