import unittest

from shopkit.money import format_price, total


class MoneyTest(unittest.TestCase):
    def test_format(self):
        self.assertEqual(format_price(12.5), "$12.50")

    def test_total(self):
        self.assertEqual(total([1.25, 2.5]), 3.75)


if __name__ == "__main__":
    unittest.main()
