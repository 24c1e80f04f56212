import unittest

from people.names import full_name


class HiddenNamesTest(unittest.TestCase):
    def test_none(self):
        self.assertEqual(full_name("Plato", None), "Plato")

    def test_empty(self):
        self.assertEqual(full_name("Plato", ""), "Plato")

    def test_both(self):
        self.assertEqual(full_name("Alan", "Turing"), "Alan Turing")


if __name__ == "__main__":
    unittest.main()
