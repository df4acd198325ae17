"""Callbacks of one's own, one of them not a Lightning callback and one with an option it requires."""
import lightning.pytorch as pl


class NotACallback:
    """Has a hook's name but is no ``lightning.pytorch.Callback``."""

    def on_train_start(self, trainer, pl_module):
        pass


class EveryNCallback(pl.Callback):
    """Requires ``every``."""

    def __init__(self, every: int):
        self.every = every
