"""Splitting lists."""


def halves(items):
    """The list cut in two; the first half is the shorter one when the length is odd."""
    mid = len(items) // 2
    return items[:mid], items[mid:]


def chunks(items, size):
    """Consecutive lists of `size` items (the last may be shorter); ValueError if size < 1."""
    if size < 1:
        raise ValueError("size must be at least 1")
    return [items[i:i + size] for i in range(0, len(items), size)]
