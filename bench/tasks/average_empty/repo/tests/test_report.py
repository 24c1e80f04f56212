import unittest

from grades.report import average, best


class ReportTest(unittest.TestCase):
    def test_average(self):
        self.assertEqual(average([2, 4]), 3)

    def test_average_empty(self):
        self.assertIsNone(average([]))

    def test_best(self):
        self.assertEqual(best([3, 9, 1]), 9)
        self.assertIsNone(best([]))


if __name__ == "__main__":
    unittest.main()
