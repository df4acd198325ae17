"""Checkpointing that also covers the end of training."""
from __future__ import annotations

from lightning.pytorch.callbacks import ModelCheckpoint


class GANModelCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, plus a save when training ends between two save intervals.

    ``every_n_train_steps`` is in Lightning's unit (every optimizer step, G's and D's); configs derive it
    from generator steps with the ``optimizer_steps`` resolver.
    """

    def on_train_end(self, trainer, pl_module) -> None:
        if self.save_last and trainer.global_step != self._last_global_step_saved:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        super().on_train_end(trainer, pl_module)
