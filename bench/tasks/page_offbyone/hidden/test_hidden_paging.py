import unittest

from listkit.paging import page


class HiddenPagingTest(unittest.TestCase):
    items = list(range(1, 8))

    def test_page_one(self):
        self.assertEqual(page(self.items, 1, 3), [1, 2, 3])

    def test_page_two(self):
        self.assertEqual(page(self.items, 2, 3), [4, 5, 6])

    def test_last_partial_page(self):
        self.assertEqual(page(self.items, 3, 3), [7])

    def test_past_the_end(self):
        self.assertEqual(page(self.items, 4, 3), [])


if __name__ == "__main__":
    unittest.main()
