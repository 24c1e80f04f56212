import unittest

from grades.report import average


class HiddenAverageTest(unittest.TestCase):
    def test_empty(self):
        self.assertIsNone(average([]))

    def test_mean(self):
        self.assertEqual(average([1, 2, 3, 4]), 2.5)

    def test_single(self):
        self.assertEqual(average([7]), 7)


if __name__ == "__main__":
    unittest.main()
