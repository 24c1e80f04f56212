import unittest

from strkit.transform import reverse_words


class HiddenReverseTest(unittest.TestCase):
    def test_basic(self):
        self.assertEqual(reverse_words("hello big world"), "world big hello")

    def test_extra_spaces(self):
        self.assertEqual(reverse_words("  one   two  "), "two one")

    def test_empty(self):
        self.assertEqual(reverse_words(""), "")

    def test_single(self):
        self.assertEqual(reverse_words("solo"), "solo")


if __name__ == "__main__":
    unittest.main()
