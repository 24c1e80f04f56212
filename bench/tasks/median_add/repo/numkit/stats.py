"""Simple statistics."""


def mean(values):
    """The arithmetic mean of a list of numbers; ValueError when the list is empty."""
    if not values:
        raise ValueError("mean of an empty list")
    return sum(values) / len(values)
