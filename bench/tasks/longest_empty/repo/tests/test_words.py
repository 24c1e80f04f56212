import unittest

from wordkit.words import longest_word, shortest_word


class WordsTest(unittest.TestCase):
    def test_longest(self):
        self.assertEqual(longest_word("a quick fox"), "quick")

    def test_shortest(self):
        self.assertEqual(shortest_word("a quick fox"), "a")


if __name__ == "__main__":
    unittest.main()
