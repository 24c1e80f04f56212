import unittest

from listkit.split import chunks


class HiddenChunksTest(unittest.TestCase):
    def test_uneven(self):
        self.assertEqual(chunks([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]])

    def test_even(self):
        self.assertEqual(chunks([1, 2, 3, 4], 2), [[1, 2], [3, 4]])

    def test_empty(self):
        self.assertEqual(chunks([], 3), [])

    def test_bad_size(self):
        with self.assertRaises(ValueError):
            chunks([1, 2], 0)


if __name__ == "__main__":
    unittest.main()
