"""Grade reports."""
