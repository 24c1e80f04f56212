"""Small number helpers."""
