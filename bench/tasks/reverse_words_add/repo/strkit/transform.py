"""String transformations."""


def shout(text):
    """The text in capitals with an exclamation mark."""
    return text.upper() + "!"


def snake_case(text):
    """Words joined by underscores, in lower case: "Hello World" -> "hello_world"."""
    return "_".join(text.lower().split())
