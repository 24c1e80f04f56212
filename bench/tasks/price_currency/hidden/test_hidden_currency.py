import unittest

from shopkit.money import format_price


class HiddenCurrencyTest(unittest.TestCase):
    def test_keyword(self):
        self.assertEqual(format_price(3, currency="€"), "€3.00")

    def test_positional(self):
        self.assertEqual(format_price(0.5, "£"), "£0.50")

    def test_default(self):
        self.assertEqual(format_price(12.5), "$12.50")


if __name__ == "__main__":
    unittest.main()
