"""Words in a text."""


def longest_word(text):
    """The longest word of `text` (the first one of that length); "" when there is none."""
    words = text.split()
    if not words:
        return ""
    return max(words, key=len)


def shortest_word(text):
    """The shortest word of `text` (the first one of that length)."""
    return min(text.split(), key=len)
