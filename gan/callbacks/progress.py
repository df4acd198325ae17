"""Lightning's progress bar, counting what it shows (training batches) correctly.

Lightning bounds the bar by the remaining ``max_steps``, but those count every optimizer step while the bar
counts batches, and a batch here is one GAN iteration of ``n_critic + n_generator`` optimizer steps (or
``model.iterations_per_batch`` iterations). Left alone, a DCGAN run's bar would end at 50 % (a WGAN's, with
n_critic = 5, at 17 %)."""
from __future__ import annotations

import math

from lightning.pytorch.callbacks import TQDMProgressBar


class GANProgressBar(TQDMProgressBar):
    @property
    def total_train_batches(self) -> int | float:
        trainer, module = self.trainer, self.trainer.lightning_module
        if not (trainer.max_steps > 0 and hasattr(module, "optimizer_steps_per_training_step")):
            return super().total_train_batches
        remaining_steps = max(trainer.max_steps - trainer.global_step, 0)
        batches = math.ceil(remaining_steps / module.optimizer_steps_per_training_step)
        return min(trainer.num_training_batches, batches)
