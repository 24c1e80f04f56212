"""Reports over a list of scores."""


def average(numbers):
    """The mean of the numbers."""
    return sum(numbers) / len(numbers)


def best(numbers):
    """The highest number, or None for an empty list."""
    return max(numbers) if numbers else None
