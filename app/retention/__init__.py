"""Retention: purge finished jobs after an age per state, keeping daily counts and tombstones."""
