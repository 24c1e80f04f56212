import unittest

from datekit.calendar import days_in_year, is_leap_year


class CalendarTest(unittest.TestCase):
    def test_common_years(self):
        self.assertTrue(is_leap_year(2024))
        self.assertFalse(is_leap_year(2023))

    def test_year_2000(self):
        self.assertTrue(is_leap_year(2000))

    def test_days(self):
        self.assertEqual(days_in_year(2023), 365)


if __name__ == "__main__":
    unittest.main()
