import unittest

from textkit.words import truncate, word_count


class WordCountTest(unittest.TestCase):
    def test_counts_words(self):
        self.assertEqual(word_count("hello big world"), 3)

    def test_empty_text_has_no_words(self):
        self.assertEqual(word_count(""), 0)

    def test_repeated_spaces_do_not_make_words(self):
        self.assertEqual(word_count("hello   world"), 2)

    def test_a_tab_separates_words(self):
        self.assertEqual(word_count("hello\tworld"), 2)


class TruncateTest(unittest.TestCase):
    def test_short_text_is_kept(self):
        self.assertEqual(truncate("hello", 10), "hello")

    def test_long_text_is_cut_with_an_ellipsis(self):
        self.assertEqual(truncate("hello world", 8), "hello...")


if __name__ == "__main__":
    unittest.main()
