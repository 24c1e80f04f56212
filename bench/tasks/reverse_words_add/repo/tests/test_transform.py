import unittest

from strkit import transform


class TransformTest(unittest.TestCase):
    def test_shout(self):
        self.assertEqual(transform.shout("hi"), "HI!")

    def test_snake_case(self):
        self.assertEqual(transform.snake_case("Hello World"), "hello_world")

    def test_reverse_words(self):
        self.assertEqual(transform.reverse_words("hello big world"), "world big hello")


if __name__ == "__main__":
    unittest.main()
