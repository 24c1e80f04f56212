"""Money formatting."""


def format_price(amount, currency="$"):
    """The amount with a currency sign and two decimals, e.g. "$12.50"."""
    return currency + format(amount, ".2f")


def total(prices):
    """The sum of the prices, rounded to cents."""
    return round(sum(prices), 2)
