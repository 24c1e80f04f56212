"""Turning titles into URL slugs."""
