"""List helpers."""
