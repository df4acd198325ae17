"""Pieces of one's own, written as a user's module would be, for the tests of what the framework says about them."""
