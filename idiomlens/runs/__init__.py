"""runs (in progress)."""
