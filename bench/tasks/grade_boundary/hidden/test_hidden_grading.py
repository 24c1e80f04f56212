import unittest

from school.grading import letter_grade, passed


class HiddenGradingTest(unittest.TestCase):
    def test_boundaries(self):
        self.assertEqual(letter_grade(90), "A")
        self.assertEqual(letter_grade(80), "B")
        self.assertEqual(letter_grade(70), "C")

    def test_just_below(self):
        self.assertEqual(letter_grade(69), "F")
        self.assertEqual(letter_grade(89), "B")

    def test_pass_at_70(self):
        self.assertTrue(passed(70))


if __name__ == "__main__":
    unittest.main()
