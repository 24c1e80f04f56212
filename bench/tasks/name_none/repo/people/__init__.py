"""People helpers."""
