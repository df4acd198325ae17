"""The generator-step x-axis for dashboards."""
from __future__ import annotations

import lightning.pytorch as pl

from gan.utils.logging import GENERATOR_STEP, plot_against_generator_steps


class GeneratorStepAxis(pl.Callback):
    """Logs ``train/generator_step`` with the module's own metrics (same rows, same cadence) and has W&B
    plot every metric the run logs through ``self.log`` against it: with ``n_critic`` > 1, Lightning's step (batches) runs
    ``n_critic`` times faster than the generator steps that ``generator_steps`` and the intervals count."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        pl_module.log(GENERATOR_STEP, float(pl_module.generator_steps), on_step=True, on_epoch=False)
        plot_against_generator_steps(trainer.loggers, trainer.callback_metrics)
