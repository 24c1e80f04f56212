"""Timer helpers."""
