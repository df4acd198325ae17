"""How many GAN iterations one Lightning training batch holds (``model.iterations_per_batch``).

Lightning's per-batch work (fetching and moving the batch, every callback's batch hooks, progress and logger
bookkeeping: 0.25-0.45 ms on a 2-core CPU, README "Speed") is paid once per training batch, so a batch of K
iterations pays it once for K. The updates and the data stream are the same for every K (the tests compare
weights bit for bit), and what watches every iteration still sees each one (``on_gan_iteration_end``).
What acts at the end of a training batch acts only at every K-th iteration, though:

- Lightning's logging, every ``trainer.log_every_n_steps`` iterations (:func:`count_iteration` makes
  Lightning's logging counter count iterations, so the cadence and the logged x-axis stay in iterations);
- Lightning's checkpoint callbacks, which test ``global_step % every_n_train_steps == 0`` at batch ends;
- callbacks with a ``batch_end_every_n_generator_steps`` (sample grids, metrics), which act at the first batch
  end past each multiple.

``auto`` (the shipped default) takes the largest K up to :data:`AUTO_MOST_ITERATIONS` that every such cadence
is a multiple of, and whose batch keeps the real samples under :data:`AUTO_MOST_BYTES`: every event then
happens at the iteration it happens at with one iteration per batch, and a run with ``log_every_n_steps=1``
(``debug=fast``) or a checkpoint every 333 iterations simply gets K=1. Large samples gain nothing from K > 1
(their iteration costs far more than Lightning's batch) and would hold K times the data in memory; a loader
the framework did not build yields one real batch per step, so it gets K=1 too. An explicit K is the
user's: a cadence that Lightning tests with ``%`` and that would fall inside a batch (and so never act) is
refused, naming it, before the first batch; grids and metrics then act at the batch end past their step.
"""
from __future__ import annotations

import logging
import math
from typing import NamedTuple

import lightning.pytorch as pl

from gan.utils.errors import ConfigError

log = logging.getLogger("gan")

AUTO = "auto"
#: the most iterations ``auto`` puts in one batch: Lightning's per-batch cost is then under ~2 % of even a
#: width-1 DCGAN's iteration on the CPU (benchmarks/overhead.py)
AUTO_MOST_ITERATIONS = 10
#: the most real-sample bytes (float32) ``auto`` gathers into one batch
AUTO_MOST_BYTES = 64 * 2**20


class Cadence(NamedTuple):
    """Something that acts at training batch ends every ``every`` of its units; ``per_iteration``: its units
    per GAN iteration (1: iterations, ``n_generator``: generator steps, ``n_critic + n_generator``: Lightning's
    optimizer steps). ``exact``: tested with ``%`` at a batch end, so a multiple inside a batch never acts."""

    what: str
    every: int
    per_iteration: int
    exact: bool

    def falls_on_batch_ends(self, iterations_per_batch: int) -> bool:
        return self.every % (iterations_per_batch * self.per_iteration) == 0


def batch_end_cadences(trainer: pl.Trainer, module) -> list[Cadence]:
    """Every cadence that Lightning or a callback of this trainer tests at the end of a training batch."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    cadences = []
    if trainer.log_every_n_steps:
        cadences.append(Cadence(f"trainer.log_every_n_steps={trainer.log_every_n_steps}", trainer.log_every_n_steps, 1, True))
    optimizer_steps = module.n_critic + module.n_generator
    for callback in trainer.callbacks:
        name = type(callback).__name__
        if isinstance(callback, ModelCheckpoint) and callback._every_n_train_steps:  # no public accessor
            every = callback._every_n_train_steps
            which = name + (f" monitoring {callback.monitor}" if callback.monitor else "")
            cadences.append(Cadence(f"a checkpoint every {every / optimizer_steps:g} iterations ({which})", every, optimizer_steps, True))
        every = getattr(callback, "batch_end_every_n_generator_steps", 0)
        if every:
            cadences.append(Cadence(f"{name} every {every} generator steps", every, module.n_generator, False))
    return cadences


def checkpoint_interval_error(trainer: pl.Trainer, module) -> ConfigError | None:
    """A checkpoint callback whose ``every_n_train_steps`` (Lightning's optimizer steps) is not a multiple of the
    optimizer steps of one GAN iteration: Lightning's step advances by that many per iteration and the callback
    tests ``global_step % every == 0`` at iteration (batch) ends, so it would save only at the common multiples,
    far less often than asked (every 12 steps for 4 under n_critic=5). The shipped configs derive the interval
    from generator steps (``${optimizer_steps:...}``), which always gives a multiple."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    per_iteration = module.n_critic + module.n_generator
    for callback in trainer.callbacks:
        every = getattr(callback, "_every_n_train_steps", 0) if isinstance(callback, ModelCheckpoint) else 0
        if not every or every % per_iteration == 0:  # no public accessor; 0: no interval
            continue
        key = getattr(callback, "config_key", None) or type(callback).__name__
        return checkpoint_interval_refused(key, every, module.n_critic, module.n_generator)
    return None


def checkpoint_interval_refused(key: str, every: int, n_critic: int, n_generator: int) -> ConfigError:
    """The one line for ``{key}.every_n_train_steps={every}`` that is not a multiple of an iteration's optimizer steps."""
    per_iteration = n_critic + n_generator
    below = every - every % per_iteration
    multiples = f"{below} or {below + per_iteration}" if below else f"{per_iteration}"
    return ConfigError(
        f"{key}.every_n_train_steps={every}: Lightning's step advances by {per_iteration} per GAN iteration "
        f"(n_critic={n_critic} + n_generator={n_generator}), so it would save only every {math.lcm(every, per_iteration)} "
        f"steps; expected a multiple of {per_iteration} (e.g. {multiples})")


def real_bytes_per_iteration(datamodule, module) -> int:
    """The float32 bytes of the real samples one iteration reads."""
    samples = module.real_batches_per_iteration * int(datamodule.batch_size)
    return samples * math.prod(datamodule.sample_shape) * 4


def resolve_iterations_per_batch(setting: int | str, trainer: pl.Trainer, module) -> int:
    """The K to train with: ``auto``'s choice, or the explicit setting once its cadences are checked (and the
    checkpoint intervals, whatever K: see :func:`checkpoint_interval_error`)."""
    refused = checkpoint_interval_error(trainer, module)
    if refused is not None:
        raise refused
    cadences = batch_end_cadences(trainer, module)
    if setting != AUTO:
        chosen = int(setting)
        for cadence in cadences:
            if chosen > 1 and cadence.exact and not cadence.falls_on_batch_ends(chosen):
                raise ConfigError(f"{cadence.what} falls inside a training batch of model.iterations_per_batch={chosen} "
                                  f"iterations: make it a multiple of {chosen} iterations, or set model.iterations_per_batch "
                                  f"to a divisor of it (or auto)")
        return chosen
    datamodule = trainer.datamodule
    if not hasattr(datamodule, "batches_per_training_step"):  # not a GANDataModule: its loader yields one real batch
        return 1
    room = AUTO_MOST_BYTES // max(1, real_bytes_per_iteration(datamodule, module))
    for k in range(min(AUTO_MOST_ITERATIONS, room), 1, -1):
        if all(cadence.falls_on_batch_ends(k) for cadence in cadences):
            log.info("Training batches of %d GAN iterations (model.iterations_per_batch=auto; cadences: %s)", k,
                     ", ".join(c.what for c in cadences) or "none")
            return k
    return 1


def count_iteration(trainer: pl.Trainer | None) -> None:
    """Advance Lightning's logging counter by one GAN iteration inside a training batch. Lightning advances it
    once per batch (``_batches_that_stepped``: no public accessor) and decides from it when to log and at which
    x-position; advanced before every iteration of a batch but the first, it counts iterations, as it does with
    one iteration per batch: the logging cadence, the logged steps and what checkpoints hold do not depend on K."""
    if trainer is not None:
        trainer.fit_loop.epoch_loop._batches_that_stepped += 1
