import unittest

from textkit.slug import slugify


class HiddenSlugifyTest(unittest.TestCase):
    def test_words_are_lowercased_and_joined_with_dashes(self):
        self.assertEqual(slugify("Hello World"), "hello-world")

    def test_punctuation_is_dropped(self):
        self.assertEqual(slugify("Rust, Python & Go!"), "rust-python-go")

    def test_repeated_separators_collapse(self):
        self.assertEqual(slugify("  a -- b  "), "a-b")


if __name__ == "__main__":
    unittest.main()
