"""Word helpers."""
