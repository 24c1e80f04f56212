import unittest

from timer.count import countdown


class HiddenCountdownTest(unittest.TestCase):
    def test_three(self):
        self.assertEqual(countdown(3), [3, 2, 1])

    def test_one(self):
        self.assertEqual(countdown(1), [1])

    def test_zero(self):
        self.assertEqual(countdown(0), [])


if __name__ == "__main__":
    unittest.main()
