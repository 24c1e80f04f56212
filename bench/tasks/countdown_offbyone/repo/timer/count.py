"""Counting."""


def countdown(n):
    """The numbers from n down to 1."""
    return list(range(n, 1, -1))


def count_up(n):
    """The numbers from 1 up to n."""
    return list(range(1, n + 1))
