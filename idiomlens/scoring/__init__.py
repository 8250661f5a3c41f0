"""scoring (in progress)."""
