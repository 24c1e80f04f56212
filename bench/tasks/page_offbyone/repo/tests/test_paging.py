import unittest

from listkit.paging import page, page_count


class PagingTest(unittest.TestCase):
    def test_first_page(self):
        self.assertEqual(page([1, 2, 3, 4, 5], 1, 2), [1, 2])

    def test_page_count(self):
        self.assertEqual(page_count([1, 2, 3, 4, 5], 2), 3)


if __name__ == "__main__":
    unittest.main()
