"""A callback that logs how spread out the generator's samples are, every N generator steps.

The GAN module calls ``on_gan_iteration_end(trainer, module)`` after every GAN iteration (a Lightning training batch
may hold several, so ``on_train_batch_end`` would miss steps); ``module.generator_steps`` counts generator updates.
"""
from __future__ import annotations

import logging

import lightning.pytorch as pl
import torch

from gan.utils.errors import ConfigError
from gan.utils.logging import log_scalars

log = logging.getLogger("gan")


class SampleSpread(pl.Callback):
    """Every ``every_n_generator_steps`` generator steps: the mean distance of ``num_samples`` fixed-noise samples
    from their centroid (``own/spread``) and the centroid's distance from the origin (``own/center``), written to
    every active logger and kept in ``history`` (generator step, spread, center). It changes nothing in training."""

    def __init__(self, every_n_generator_steps: int = 100, num_samples: int = 512):
        if int(every_n_generator_steps) < 1:
            raise ConfigError(f"every_n_generator_steps must be a positive integer, got {every_n_generator_steps}")
        self.every, self.num_samples = int(every_n_generator_steps), int(num_samples)
        self.history: list[tuple[int, float, float]] = []

    def on_gan_iteration_end(self, trainer, pl_module) -> None:
        step = pl_module.generator_steps
        if step % self.every or (self.history and self.history[-1][0] == step):
            return
        samples = pl_module.sample_fixed(self.num_samples).flatten(1).float()  # the EMA generator when EMA is on
        center = samples.mean(dim=0)
        spread, offset = (samples - center).norm(dim=1).mean().item(), center.norm().item()  # one host read / N steps
        self.history.append((step, spread, offset))
        log_scalars(trainer, {"own/spread": spread, "own/center": offset}, step)
        log.info("generator step %d: samples spread %.3f around a centre %.3f from the origin", step, spread, offset)
