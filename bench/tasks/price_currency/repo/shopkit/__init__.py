"""Shop helpers."""
