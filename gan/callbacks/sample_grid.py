"""Sample grids from the fixed noise every N generator steps: PNG in the run dir + the active loggers."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from gan.utils.background import BackgroundWriter
from gan.utils.errors import ConfigError
from gan.utils.logging import log_image, logger_step
from gan.utils.steps import interval_crossed
from gan.visualize import ScatterPlot, class_grid, picture_writer

log = logging.getLogger("gan")


def fixed_noise_codes(module) -> int | None:
    """How many fixed latent codes ``module`` holds (``GANModule.fixed_noise``: ``+model.num_fixed_samples``), the
    most samples ``sample_fixed`` draws; None for a module without them."""
    noise = getattr(module, "fixed_noise", None)
    return int(noise.shape[0]) if noise is not None else None


class SampleGrid(pl.Callback):
    """Every ``every_n_generator_steps`` generator steps (0: never) and once at the end, render the fixed noise.

    Image data: the first ``num_images`` fixed codes as a grid. 2D data: ``num_points`` fixed codes as a
    scatter plot over the real modes. Uses the EMA generator when EMA is on, in eval mode. Conditional
    models (``num_classes``) on image data: one row per class, the same latent code down each column
    (:func:`class_grid`; fewer images than classes: one of each of ``num_images`` classes spread over them).

    The samples are drawn (and a scatter plot rendered) at the step; the PNG file is written on a background
    thread (encoding releases the GIL: ~8 of a toy plot's ~15 ms run beside training) and goes to the loggers,
    at the step it shows, from the first training batch end after it is written. Training ends (or fails) only
    once every file is complete. ``last_path``: the newest picture's file.

    The generator step of the last grid is saved in checkpoints, so a resumed run draws on schedule.
    """

    def __init__(self, dirpath: str, every_n_generator_steps: int = 100, num_images: int = 64,
                 num_points: int = 1024, key: str = "samples"):
        self.dirpath = Path(dirpath)
        self.every = int(every_n_generator_steps)
        self.num_images, self.num_points, self.key = int(num_images), int(num_points), key
        if self.every < 0:  # 0: the final picture only; a negative interval meant the same, silently
            raise ConfigError(f"callbacks.sample_grid.every_n_generator_steps={self.every}: expected an integer >= 0 "
                              "(0: only the final picture)")
        for name, count in (("num_images", self.num_images), ("num_points", self.num_points)):
            if count < 1:  # the grid (or plot) would be drawn empty at every interval, silently
                raise ConfigError(f"callbacks.sample_grid.{name}={count}: expected a positive integer")
        self._last_rendered: int | None = None
        self._batch_end_position: int | None = None  # the logging position at the last training batch's end
        self.last_path: Path | None = None
        self._scatter: ScatterPlot | None = None  # 2D data: one plot kept for the run (its axes drawn once)
        self._writer = BackgroundWriter("sample-grid")

    def setup(self, trainer, pl_module, stage: str) -> None:
        """Before training: a count above the module's fixed noise codes drew only that many, without a word."""
        codes = fixed_noise_codes(pl_module)
        if stage != "fit" or codes is None or trainer.datamodule is None:
            return
        points = self._points(trainer)
        name, count = ("num_points", self.num_points) if points else ("num_images", self.num_images)
        num_classes = getattr(pl_module, "num_classes", None)
        needed = count if points or not num_classes else class_grid(count, num_classes)[0]  # the codes of a row per class
        if needed > codes:
            most = codes if points or not num_classes else codes * num_classes
            per_class = " per class" if most != codes else ""
            raise ConfigError(f"callbacks.sample_grid.{name}={count}: expected at most {most}, as many as the module's fixed "
                              f"noise codes{per_class} (+model.num_fixed_samples={codes} sets their number)")

    @property
    def batch_end_every_n_generator_steps(self) -> int:
        """The cadence it tests at training batch ends (gan/batching.py fits the batches to it)."""
        return self.every

    def on_train_start(self, trainer, pl_module) -> None:
        # 2D data: the plot's axes are drawn here, before the first step, not at the first grid
        if trainer.is_global_zero and self._points(trainer):
            self._scatter = ScatterPlot(getattr(trainer.datamodule, "modes", None))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._writer.collect()  # pictures written meanwhile go to the loggers
        self._batch_end_position = logger_step(trainer)
        step = pl_module.generator_steps
        if interval_crossed(step, self._last_rendered, self.every):
            self.render(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if pl_module.generator_steps != self._last_rendered:
            # at the last batch's logging position, beside the losses of its generator step: Lightning has moved
            # its position past that batch by now (the final grid sat one step after them, an audit)
            self.render(trainer, pl_module, shown_at=self._batch_end_position)
        self._writer.close()  # every file complete and logged before the loggers finish
        self._scatter = None  # a later fit may train on other data

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._writer.close(collect=False)  # the files complete; the loggers may be what failed

    def render(self, trainer, pl_module, shown_at: int | None = None) -> None:
        """Draw the fixed samples, save the picture and log it at ``shown_at`` (default: the logging position now)."""
        step = pl_module.generator_steps
        self._last_rendered = step
        if not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        points = self._points(trainer)
        count, nrow = self.num_points if points else self.num_images, None
        num_classes = getattr(pl_module, "num_classes", None)
        if num_classes and not points:
            codes, labels, nrow = class_grid(count, num_classes, pl_module.device)
            samples = pl_module.sample_fixed(codes, labels)
        else:
            samples = pl_module.sample_fixed(count)
        if not bool(torch.isfinite(samples).all()):  # a diverged generator: nothing to look at
            log.warning("No sample grid at generator step %d: the samples hold NaN/Inf", step)
            return
        # 2D samples go on the plot kept since on_train_start (a one-off plot if there is none)
        caption = f"generator step {step}"
        write = picture_writer(samples, getattr(datamodule, "modes", None), caption, nrow, scatter=self._scatter)
        self.last_path = self.dirpath / f"gstep_{step:07d}.png"
        shown_at = logger_step(trainer) if shown_at is None else shown_at
        self._writer.submit(write, self.last_path, then=lambda path: log_image(trainer, self.key, path, step=shown_at,
                                                                                 generator_step=step, caption=caption))

    @staticmethod
    def _points(trainer) -> bool:
        return getattr(trainer.datamodule, "kind", "image") == "points"

    def state_dict(self) -> dict[str, Any]:
        return {"last_rendered": self._last_rendered}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._last_rendered = state_dict.get("last_rendered")
