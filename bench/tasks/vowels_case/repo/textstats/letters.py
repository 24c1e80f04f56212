"""Counting letters."""

VOWELS = "aeiou"


def count_vowels(text):
    """How many vowels `text` has."""
    return sum(1 for ch in text if ch in VOWELS)


def count_letters(text):
    """How many letters `text` has."""
    return sum(1 for ch in text if ch.isalpha())
