"""Words in a text."""


def longest_word(text):
    """The longest word of `text` (the first one of that length)."""
    return max(text.split(), key=len)


def shortest_word(text):
    """The shortest word of `text` (the first one of that length)."""
    return min(text.split(), key=len)
