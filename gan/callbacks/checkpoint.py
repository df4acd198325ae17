"""Checkpointing that survives crashes and interruptions.

Every file is written to ``<name>.tmp`` next to its final path and moved over it with ``os.replace`` (atomic
on POSIX within one file system), so a crash while saving leaves the previous checkpoint intact.

SIGTERM (schedulers, ``kill``), SIGINT (Ctrl+C) and SIGUSR1 only set a flag; the next training batch
boundary saves ``last.ckpt`` and the process exits with status ``128 + signal``. Saving at a batch boundary
(never in the middle of a D or G update) is what makes the saved state resumable exactly. Under DDP a
signal seen by any rank stops all of them. SIGUSR1 is left alone when something already handles it
(submitit's or Lightning's SLURM requeue handler).
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

log = logging.getLogger("gan")

SAVE_ON_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class GANModelCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint with atomic writes, a save when training ends between two intervals,
    and a save before exiting on SIGTERM / SIGINT / SIGUSR1.

    ``every_n_train_steps`` is in Lightning's unit (every optimizer step, G's and D's); configs derive it
    from generator steps with the ``optimizer_steps`` resolver. ``save_on_signal`` needs ``save_last``.
    """

    def __init__(self, *args: Any, save_on_signal: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.save_on_signal = save_on_signal
        self.received_signal: int | None = None
        self._previous_handlers: dict[int, Any] = {}

    # -------------------------------------------------------------------------------------- atomic write
    def _save_checkpoint(self, trainer, filepath: str) -> None:
        temporary = f"{filepath}.tmp"
        try:
            super()._save_checkpoint(trainer, temporary)
            if trainer.is_global_zero:  # only rank zero writes files
                os.replace(temporary, filepath)
        except BaseException:
            if trainer.is_global_zero and os.path.exists(temporary):
                os.remove(temporary)
            raise
        self._last_checkpoint_saved = filepath

    # ------------------------------------------------------------------------------------ end of training
    def on_train_end(self, trainer, pl_module) -> None:
        if self.save_last and trainer.global_step != self._last_global_step_saved:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        super().on_train_end(trainer, pl_module)

    # -------------------------------------------------------------------------------------------- signals
    def on_train_start(self, trainer, pl_module) -> None:
        self.received_signal = None
        # only the callback that writes last.ckpt handles signals (a best-only checkpoint has nothing to save)
        if not (self.save_on_signal and self.save_last) or threading.current_thread() is not threading.main_thread():
            return
        for signum in SAVE_ON_SIGNALS:
            previous = signal.getsignal(signum)
            if signum == signal.SIGUSR1 and previous not in (None, signal.SIG_DFL, signal.SIG_IGN):
                continue  # on SLURM, submitit or Lightning own the requeue signal: they requeue the job
            self._previous_handlers[signum] = previous
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame) -> None:
        log.warning("Received signal %d: saving a checkpoint at the end of this training step, then exiting", signum)
        # Lightning's SIGTERM handler is replaced, not chained: chained, a signal landing after this batch's
        # check below would make Lightning raise at the batch end without our save. Other DDP ranks learn of
        # the signal through that check's reduction.
        self.received_signal = signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if not (self.save_on_signal and self.save_last):
            return
        # every rank must take part in the save, so a signal seen by any rank stops all of them
        if not trainer.strategy.reduce_boolean_decision(self.received_signal is not None, all=False):
            return
        if trainer.global_step != self._last_global_step_saved:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        signum = self.received_signal or signal.SIGTERM
        log.warning("Saved %s after signal %d; exiting", self.last_model_path, signum)
        raise SystemExit(128 + int(signum))

    def teardown(self, trainer, pl_module, stage: str) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}
        super().teardown(trainer, pl_module, stage)
