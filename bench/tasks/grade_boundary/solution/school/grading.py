"""Letter grades."""


def letter_grade(score):
    """The letter for a score from 0 to 100: A from 90, B from 80, C from 70, else F."""
    if score >= 90:
        return "A"
    if score >= 80:
        return "B"
    if score >= 70:
        return "C"
    return "F"


def passed(score):
    """Whether the score is a pass (C or better)."""
    return letter_grade(score) != "F"
