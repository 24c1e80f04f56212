"""Counting letters."""

VOWELS = "aeiou"


def count_vowels(text):
    """How many vowels `text` has, in any case."""
    return sum(1 for ch in text if ch.lower() in VOWELS)


def count_letters(text):
    """How many letters `text` has."""
    return sum(1 for ch in text if ch.isalpha())
