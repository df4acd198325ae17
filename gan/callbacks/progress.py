"""Lightning's progress bar, counting GAN iterations.

Lightning's bar counts training batches and bounds them by the remaining ``max_steps``, but those count every
optimizer step, and a batch here holds ``model.iterations_per_batch`` GAN iterations of ``n_critic +
n_generator`` optimizer steps each: left alone, a DCGAN run's bar would end at 50 % (a WGAN's, with n_critic =
5, at 17 %) and move in jumps of a batch. This one counts iterations (its rate is GAN iterations per second,
generator steps per second with one generator update per iteration), updated from the module's
``on_gan_iteration_end``, whatever the number of iterations per batch: every ``refresh_rate`` iterations, but
not within ``min_seconds_between_refreshes`` of the last redraw, since a redraw with its metrics costs ~0.2 ms, a
tenth of a tiny DCGAN iteration. Its default (null) is tqdm's own spacing, 0.1 s, on a terminal, and 10 s when the
output goes to a file (a SLURM job's log, ``> out.txt``), where every redraw stays: at 0.1 s the bar filled a tiny
run's log at ~45 kB a minute (~65 MB a day), at 10 s under 1 MB a day. In a file each redraw also ends its line, so
the log lines between them start lines of their own."""
from __future__ import annotations

import math
import sys
import time

from lightning.pytorch.callbacks import TQDMProgressBar

from gan.utils.errors import ConfigError


def _counts_iterations(module) -> bool:
    return hasattr(module, "iterations_trained")  # a GANModule: it calls on_gan_iteration_end


class GANProgressBar(TQDMProgressBar):
    #: the spacing of redraws by default, on a terminal (tqdm's own) and when the output goes to a file
    TERMINAL_SPACING, FILE_SPACING = 0.1, 10.0

    def __init__(self, *args, min_seconds_between_refreshes: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if self.refresh_rate < 0:  # Lightning takes any rate <= 0 as "no bar": a negative one turned it off silently
            raise ConfigError(f"callbacks.progress_bar.refresh_rate={self.refresh_rate}: expected an integer >= 0 (0: no bar)")
        if min_seconds_between_refreshes is not None and not float(min_seconds_between_refreshes) >= 0:
            raise ConfigError(f"callbacks.progress_bar.min_seconds_between_refreshes={min_seconds_between_refreshes}: "
                              "expected a number >= 0, or null (0.1 s on a terminal, 10 s into a file)")
        self.min_seconds_between_refreshes = None if min_seconds_between_refreshes is None else \
            float(min_seconds_between_refreshes)
        self._spacing: float | None = None  # the spacing in use, decided at the first redraw
        self._on_terminal = True  # whether the standard output is a terminal, also decided then
        self._iterations_before_fit = 0
        self._last_refresh = -math.inf

    @property
    def total_train_batches(self) -> int | float:
        """The iterations left to train (Lightning's name: the bar's total)."""
        trainer, module = self.trainer, self.trainer.lightning_module
        if not (trainer.max_steps > 0 and _counts_iterations(module)):
            return super().total_train_batches
        remaining_steps = max(trainer.max_steps - trainer.global_step, 0)
        iterations = math.ceil(remaining_steps / (module.n_critic + module.n_generator))
        return min(trainer.num_training_batches * module.iterations_per_batch, iterations)

    def on_train_start(self, trainer, *args) -> None:
        super().on_train_start(trainer, *args)
        self._redraw_spacing()  # decides whether the output is a terminal
        self._end_line_in_a_file(self._train_progress_bar)  # Lightning's start-up bar
        # Lightning does not call on_train_epoch_start for a run resumed inside its epoch (a checkpoint saved mid-run:
        # a signal, a periodic save; this framework's data is one endless epoch): the bar kept Lightning's start-up
        # "Training" with no total, and counted the iterations of the earlier pieces (an audit). Done here for it.
        loop = trainer.fit_loop
        if loop.restarted_mid_epoch or loop.restarted_on_epoch_end:  # Lightning's own test for leaving the hook out
            self.on_train_epoch_start(trainer)

    def on_train_epoch_start(self, trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        self._end_line_in_a_file(self._train_progress_bar)  # its reset redraws
        module = trainer.lightning_module
        if _counts_iterations(module):
            self._iterations_before_fit = module.iterations_trained

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not _counts_iterations(pl_module):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_gan_iteration_end(self, trainer, pl_module) -> None:
        bar = self.train_progress_bar
        done = pl_module.iterations_trained - self._iterations_before_fit
        if bar is None or not self._should_update(done, bar.total):
            return
        now = time.perf_counter()
        if done != bar.total and now - self._last_refresh < self._redraw_spacing():
            return
        self._last_refresh = now
        # one redraw with the new count and metrics: tqdm's set_postfix redraws by itself, and a refresh before it
        # drew every line twice (twice the cost, and every line twice in a log file or a SLURM job's output)
        bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
        if not bar.disable:
            bar.n = done
            bar.refresh()
            self._end_line_in_a_file(bar)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._set_count(pl_module)
        super().on_train_epoch_end(trainer, pl_module)  # Lightning's redraw with the final metrics
        self._end_line_in_a_file(self.train_progress_bar)

    def on_exception(self, trainer, pl_module, exception) -> None:
        """A run ended by a signal's save (SystemExit) or an error: one redraw with the iterations it trained."""
        bar = self._train_progress_bar
        if bar is not None and not bar.disable and self._set_count(pl_module):
            bar.refresh()
            self._end_line_in_a_file(bar)

    def _set_count(self, pl_module) -> bool:
        """The bar's count made this fit's iterations: a run that stopped early between two redraws (10 s apart into
        a file) ended on the last one, e.g. ``10/3000`` for 730 iterations trained (an audit)."""
        bar = self._train_progress_bar
        if bar is None or not _counts_iterations(pl_module):
            return False
        bar.n = pl_module.iterations_trained - self._iterations_before_fit
        return True

    def _end_line_in_a_file(self, bar) -> None:
        """In a file each redraw ends its line: a log line written next began on the bar's line, where
        a grep for lines that start with ``[`` missed it (an audit)."""
        if bar is not None and not bar.disable and not self._on_terminal:
            bar.fp.write("\n")
            bar.fp.flush()  # a block-buffered file (no PYTHONUNBUFFERED): stderr's next line came before the line end

    def _redraw_spacing(self) -> float:
        if self._spacing is None:
            # Lightning's bar writes to the standard output
            self._on_terminal = bool(getattr(sys.stdout, "isatty", lambda: False)())
            self._spacing = self.min_seconds_between_refreshes if self.min_seconds_between_refreshes is not None else \
                self.TERMINAL_SPACING if self._on_terminal else self.FILE_SPACING
        return self._spacing
