"""Dictionaries of counts."""


def merge_counts(a, b):
    """Every key of `a` and `b` with the sum of its counts, as a new dict."""
    merged = dict(a)
    for key, count in b.items():
        merged[key] = merged.get(key, 0) + count
    return merged


def most_common(counts):
    """The key with the highest count, or None for an empty dict."""
    if not counts:
        return None
    return max(counts, key=counts.get)
