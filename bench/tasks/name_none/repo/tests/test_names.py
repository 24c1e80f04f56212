import unittest

from people.names import full_name, initials


class NamesTest(unittest.TestCase):
    def test_full(self):
        self.assertEqual(full_name("Ada", "Lovelace"), "Ada Lovelace")

    def test_no_last_name(self):
        self.assertEqual(full_name("Plato", None), "Plato")

    def test_initials(self):
        self.assertEqual(initials("ada", "lovelace"), "A.L.")


if __name__ == "__main__":
    unittest.main()
