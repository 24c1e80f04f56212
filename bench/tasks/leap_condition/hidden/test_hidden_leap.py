import unittest

from datekit.calendar import days_in_year, is_leap_year


class HiddenLeapTest(unittest.TestCase):
    def test_400(self):
        self.assertTrue(is_leap_year(2000))
        self.assertTrue(is_leap_year(1600))

    def test_100(self):
        self.assertFalse(is_leap_year(1900))
        self.assertFalse(is_leap_year(2100))

    def test_4(self):
        self.assertTrue(is_leap_year(1996))
        self.assertFalse(is_leap_year(1999))

    def test_days_2000(self):
        self.assertEqual(days_in_year(2000), 366)


if __name__ == "__main__":
    unittest.main()
