import unittest

from school.grading import letter_grade, passed


class GradingTest(unittest.TestCase):
    def test_middle_of_bands(self):
        self.assertEqual(letter_grade(95), "A")
        self.assertEqual(letter_grade(85), "B")
        self.assertEqual(letter_grade(50), "F")

    def test_passed(self):
        self.assertTrue(passed(75))


if __name__ == "__main__":
    unittest.main()
