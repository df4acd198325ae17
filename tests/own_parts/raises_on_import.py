"""A user's module with a bug at its top level: importing it raises."""
SCALE = 1 / 0


class Loss:
    pass
