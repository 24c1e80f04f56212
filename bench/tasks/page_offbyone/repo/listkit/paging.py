"""Splitting lists into pages."""


def page(items, number, size):
    """The items of page `number` (pages start at 1) when pages hold `size` items."""
    start = number * size
    return items[start:start + size]


def page_count(items, size):
    """How many pages `items` fill when pages hold `size` items."""
    return (len(items) + size - 1) // size
