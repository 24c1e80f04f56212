"""textkit: small helpers for text."""
