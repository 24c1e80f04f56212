"""Reports over a list of scores."""


def average(numbers):
    """The mean of the numbers, or None for an empty list."""
    if not numbers:
        return None
    return sum(numbers) / len(numbers)


def best(numbers):
    """The highest number, or None for an empty list."""
    return max(numbers) if numbers else None
