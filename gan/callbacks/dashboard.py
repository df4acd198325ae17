"""The generator-step x-axis for dashboards."""
from __future__ import annotations

import lightning.pytorch as pl

from gan.utils.logging import plot_against_generator_steps


class GeneratorStepAxis(pl.Callback):
    """Has W&B plot every metric the run logs through ``self.log`` against ``train/generator_step`` (which
    the module logs with its terms): Lightning's step counts batches (GAN iterations) and optimizer steps,
    while ``generator_steps`` and every interval count generator updates. Runs on logging steps only."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer._logger_connector.should_update_logs:  # Lightning's own logging decision (no public accessor)
            plot_against_generator_steps(trainer.loggers, trainer.callback_metrics)
