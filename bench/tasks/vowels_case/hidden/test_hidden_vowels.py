import unittest

from textstats.letters import count_vowels


class HiddenVowelsTest(unittest.TestCase):
    def test_upper(self):
        self.assertEqual(count_vowels("HELLO"), 2)

    def test_mixed(self):
        self.assertEqual(count_vowels("Apple"), 2)

    def test_lower_still(self):
        self.assertEqual(count_vowels("banana"), 3)

    def test_none(self):
        self.assertEqual(count_vowels("rhythm"), 0)


if __name__ == "__main__":
    unittest.main()
