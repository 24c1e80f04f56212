"""Counting things."""
