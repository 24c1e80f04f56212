import unittest

from tally.counts import merge_counts


class HiddenMergeTest(unittest.TestCase):
    def test_keys_only_in_b(self):
        self.assertEqual(merge_counts({"a": 1}, {"b": 2}), {"a": 1, "b": 2})

    def test_mixed(self):
        self.assertEqual(
            merge_counts({"a": 1, "b": 1}, {"b": 2, "c": 3}), {"a": 1, "b": 3, "c": 3}
        )

    def test_inputs_unchanged(self):
        a, b = {"a": 1}, {"a": 2, "b": 1}
        merge_counts(a, b)
        self.assertEqual(a, {"a": 1})
        self.assertEqual(b, {"a": 2, "b": 1})


if __name__ == "__main__":
    unittest.main()
