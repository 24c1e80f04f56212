"""Money formatting."""


def format_price(amount):
    """The amount with a dollar sign and two decimals, e.g. "$12.50"."""
    return "$" + format(amount, ".2f")


def total(prices):
    """The sum of the prices, rounded to cents."""
    return round(sum(prices), 2)
