import unittest

from textkit.words import word_count


class HiddenWordCountTest(unittest.TestCase):
    def test_tabs_and_newlines_separate_words(self):
        self.assertEqual(word_count("one\ttwo\nthree"), 3)

    def test_leading_and_trailing_space(self):
        self.assertEqual(word_count("  padded  "), 1)

    def test_only_spaces(self):
        self.assertEqual(word_count("     "), 0)


if __name__ == "__main__":
    unittest.main()
