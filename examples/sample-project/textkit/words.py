"""Counting and shortening text."""


def word_count(text):
    """Return the number of words in text; words are separated by whitespace."""
    return len(text.split(" "))


def truncate(text, limit):
    """Shorten text to at most limit characters, ending with "..." when it was cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 3] + "..."
