import unittest

from tally.counts import merge_counts, most_common


class CountsTest(unittest.TestCase):
    def test_merge_common_keys(self):
        self.assertEqual(merge_counts({"a": 1}, {"a": 2}), {"a": 3})

    def test_most_common(self):
        self.assertEqual(most_common({"a": 1, "b": 5}), "b")


if __name__ == "__main__":
    unittest.main()
