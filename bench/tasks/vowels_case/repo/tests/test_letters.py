import unittest

from textstats.letters import count_letters, count_vowels


class LettersTest(unittest.TestCase):
    def test_vowels(self):
        self.assertEqual(count_vowels("banana"), 3)

    def test_letters(self):
        self.assertEqual(count_letters("a1 b2"), 2)


if __name__ == "__main__":
    unittest.main()
