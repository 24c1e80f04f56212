import unittest

from timer.count import count_up


class CountTest(unittest.TestCase):
    def test_count_up(self):
        self.assertEqual(count_up(3), [1, 2, 3])


if __name__ == "__main__":
    unittest.main()
