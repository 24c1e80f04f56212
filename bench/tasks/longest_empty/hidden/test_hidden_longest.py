import unittest

from wordkit.words import longest_word


class HiddenLongestTest(unittest.TestCase):
    def test_empty(self):
        self.assertEqual(longest_word(""), "")

    def test_only_spaces(self):
        self.assertEqual(longest_word("   "), "")

    def test_first_of_ties(self):
        self.assertEqual(longest_word("cat dog emu"), "cat")

    def test_still_longest(self):
        self.assertEqual(longest_word("to be or not"), "not")


if __name__ == "__main__":
    unittest.main()
