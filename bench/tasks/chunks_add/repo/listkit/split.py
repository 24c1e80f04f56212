"""Splitting lists."""


def halves(items):
    """The list cut in two; the first half is the shorter one when the length is odd."""
    mid = len(items) // 2
    return items[:mid], items[mid:]
