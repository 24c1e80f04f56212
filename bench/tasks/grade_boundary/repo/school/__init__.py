"""School helpers."""
