"""Names."""


def full_name(first, last):
    """The first and last name separated by a space; just the first without a last name."""
    if not last:
        return first
    return first + " " + last


def initials(first, last):
    """The initials, e.g. "A.L." for Ada Lovelace."""
    return first[0].upper() + "." + last[0].upper() + "."
