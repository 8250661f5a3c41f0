"""interventions (in progress)."""
