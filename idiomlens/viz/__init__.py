"""viz (in progress)."""
