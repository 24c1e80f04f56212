"""String helpers."""
