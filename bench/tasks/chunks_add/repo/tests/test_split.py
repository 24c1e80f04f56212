import unittest

from listkit import split


class SplitTest(unittest.TestCase):
    def test_halves(self):
        self.assertEqual(split.halves([1, 2, 3]), ([1], [2, 3]))

    def test_chunks(self):
        self.assertEqual(split.chunks([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]])


if __name__ == "__main__":
    unittest.main()
