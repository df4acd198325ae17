"""Checkpointing that survives crashes, interruptions, full disks and diverged runs.

Every file is written to ``<name>.tmp`` next to its final path and moved over it with ``os.replace`` (atomic
on POSIX within one file system), so a crash while saving leaves the previous checkpoint intact; a full
disk is reported as one line naming the checkpoint and the free space.

Weights that are not finite are never saved: before each save the health check looks at the iterations
it has not checked yet (it may stop the run and keep ``last_healthy.ckpt``), then every floating-point
tensor of the module is checked, so ``last.ckpt``, ``best.ckpt`` and ``gstep_*.ckpt`` always hold finite weights.

SIGTERM (schedulers, ``kill``), SIGINT (Ctrl+C) and SIGUSR1 only set a flag; the next training batch
boundary saves ``last.ckpt`` and the process exits with status ``128 + signal``. Saving at a batch boundary
(never in the middle of a D or G update) is what makes the saved state resumable exactly. Under DDP a
signal seen by any rank stops all of them. In a SLURM batch job (Lightning's auto-requeue on), SIGUSR1 is
the time-limit warning: after the save the job is requeued with ``scontrol requeue``, and the requeued job
finds ``last.ckpt`` in the same run directory (see ``run_dir_name`` in gan/utils/config.py). A SIGUSR1
handler installed before training (submitit's) is left alone: it requeues the job itself. When training
ends, the signal handlers in place before it are restored.
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any
from weakref import proxy

import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import ModelCheckpoint

from gan.utils.checkpoint import non_finite_weights
from gan.utils.csv_log import flush_csv_logs
from gan.utils.errors import CheckpointError

log = logging.getLogger("gan")

SAVE_ON_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def first_nonfinite_tensor(module: torch.nn.Module) -> str | None:
    """The name of the first parameter or buffer with a NaN/Inf, or None (one device sync)."""
    return next(iter(non_finite_weights(module.state_dict())), None)


def free_space(path: str | os.PathLike) -> str:
    """The free space on ``path``'s file system, e.g. ``1.2 GB``."""
    free = float(shutil.disk_usage(path).free)
    for unit in ("B", "kB", "MB", "GB"):
        if free < 1000:
            return f"{free:.3g} {unit}"
        free /= 1000
    return f"{free:.3g} TB"


def no_space_message(filepath: str) -> str:
    folder = Path(filepath).parent
    where = f"{free_space(folder)} free in {folder}"
    staging = tempfile.gettempdir()  # Lightning writes the file there first, then copies it over
    if os.stat(staging).st_dev != os.stat(folder).st_dev:
        where += f", {free_space(staging)} in {staging}, where Lightning stages it"
    return f"no space left to save checkpoint {filepath} ({where}); the previous checkpoints are intact"


def is_out_of_space(error: BaseException) -> bool:
    while error is not None:
        if isinstance(error, OSError) and error.errno in NO_SPACE:
            return True
        error = error.__cause__ or error.__context__
    return False


def slurm_requeue_job_id(trainer) -> str | None:
    """The id to requeue when this is a SLURM batch job with Lightning's auto-requeue on, else None."""
    environment = trainer._accelerator_connector.cluster_environment  # what Lightning's signal connector reads
    if not (isinstance(environment, SLURMEnvironment) and environment.auto_requeue):
        return None
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    return f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ.get("SLURM_JOB_ID")


def nothing_saved_message(callback: ModelCheckpoint, global_step: int) -> str:
    """The warning of a run that kept no checkpoint at all: ``save_last=false`` and an interval it never reached."""
    key = getattr(callback, "config_key", None) or type(callback).__name__
    every = callback._every_n_train_steps  # no public accessor
    interval = (f"every_n_train_steps={every} was not reached in {global_step} optimizer steps" if every
                else "no every_n_train_steps")
    return (f"{key}: no checkpoint was saved ({key}.save_last=false and {interval}): the trained weights are not kept; "
            f"set {key}.save_last=true to keep them in last.ckpt")


def check_checkpoint_callbacks(cfg) -> None:
    """The checkpoint callbacks' options that cannot take effect, from the config, before anything is built or
    written (and before Lightning starts other DDP processes, each of which would say it again): the intervals
    (:func:`check_checkpoint_intervals`) and the monitors (:func:`check_checkpoint_monitors`). Call it at the start of
    ``train()``, before anything is built."""
    check_checkpoint_intervals(cfg)
    check_checkpoint_monitors(cfg)


def leave_out_a_best_checkpoint_that_ranks_nothing(cfg) -> None:
    """``callbacks.best_checkpoint`` whose monitor resolved to null while metrics are scored: none of the selected
    metrics ranks checkpoints (``metrics=[memorization]``: its authenticity is highest for a generator far from the
    data), and Lightning's ModelCheckpoint without a monitor keeps the newest save, so ``best.ckpt`` held the last
    scored step under the name "best" (a README walk-through). It is left out (said once); ``metrics.monitor`` names
    a value to rank by. Call it before anything is built from ``cfg``."""
    from lightning.pytorch.utilities import rank_zero_only
    from omegaconf import OmegaConf

    from gan.metrics.registry import logged_directions

    node = OmegaConf.select(cfg, "callbacks.best_checkpoint")
    metrics = cfg.get("metrics") or {}
    selected = list(metrics.get("compute") or [])
    if (node is None or node.get("monitor") is not None or OmegaConf.select(cfg, "callbacks.metrics") is None
            or not selected or not metrics.get("every_n_generator_steps")):
        return
    if rank_zero_only.rank == 0:
        logged = ", ".join(key.removeprefix("val/") for key in sorted(logged_directions(selected)))
        log.warning("callbacks.best_checkpoint is left out: none of the selected metrics (%s) ranks checkpoints, so "
                    "best.ckpt would hold the last scored step; set metrics.monitor to one of %s to keep the best step "
                    "by it", ", ".join(selected), logged or "their values")
    cfg.callbacks.best_checkpoint = None


def checkpoint_nodes(cfg):
    """(key, node) of every node of ``cfg.callbacks`` whose target is a ModelCheckpoint."""
    from hydra.utils import get_class
    from omegaconf import DictConfig

    for name, node in (cfg.get("callbacks") or {}).items():
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        try:
            if issubclass(get_class(str(node._target_)), ModelCheckpoint):
                yield f"callbacks.{name}", node
        except Exception:  # a target that cannot be imported is reported when the callbacks are built
            continue


def check_checkpoint_intervals(cfg) -> None:
    """``every_n_train_steps`` a multiple of one GAN iteration's optimizer steps (n_critic + n_generator): Lightning
    tests ``global_step % every`` at iteration ends, so any other value saved only at the common multiples (every
    12 steps for 4 under wgan). gan/batching.py checks the callbacks a trainer holds again, built by hand or not."""
    from gan.batching import checkpoint_interval_refused
    from gan.utils.config import is_integer

    model = cfg.get("model") or {}
    n_critic, n_generator = model.get("n_critic", 1), model.get("n_generator", 1)
    if not (is_integer(n_critic) and is_integer(n_generator)) or int(n_critic) < 1 or int(n_generator) < 1:
        return  # reported where they are checked
    for key, node in checkpoint_nodes(cfg):
        every = node.get("every_n_train_steps")
        if is_integer(every) and int(every) > 0 and int(every) % (int(n_critic) + int(n_generator)):
            raise checkpoint_interval_refused(key, int(every), int(n_critic), int(n_generator))


def check_checkpoint_monitors(cfg) -> None:
    """Every checkpoint callback of ``cfg.callbacks`` with a ``monitor`` follows a value this run logs. Lightning's
    ModelCheckpoint skips a monitor it does not find without a word when it is asked to save at a step interval, so
    ``callbacks.best_checkpoint.monitor=val/nope`` trained to the end with no best.ckpt. ``val/<key>`` must be a key
    of the selected metrics (``metrics.compute``). With ``callbacks.metrics=null`` nothing is scored: said as a
    warning (leaving the metrics callback out is a choice; best.ckpt then follows nothing). Call it before
    training (through :func:`check_checkpoint_callbacks`)."""
    from omegaconf import OmegaConf

    from gan.metrics.registry import logged_directions
    from gan.utils.errors import ConfigError

    metrics = cfg.get("metrics") or {}
    scored = OmegaConf.select(cfg, "callbacks.metrics") is not None
    selected = list(metrics.get("compute") or [])
    logged = sorted(logged_directions(selected))
    for key, node in checkpoint_nodes(cfg):
        if node.get("monitor") is None:
            continue
        monitor = str(node.monitor)
        if not scored and monitor.startswith("val/"):
            from lightning.pytorch.utilities import rank_zero_only

            if rank_zero_only.rank == 0:
                log.warning("%s.monitor=%s is never logged: no metric is scored (callbacks.metrics=null), so %s writes no "
                            "checkpoint; add %s=null to leave it out", key, monitor, key, key)
            continue
        if monitor.startswith("val/") and monitor not in logged:
            raise ConfigError(f"{key}.monitor={monitor} is never logged: the metrics callback logs "
                              f"{', '.join(logged) or 'nothing'} (metrics={', '.join(selected) or 'none'}); expected one of those")
        if f"val/{monitor}" in logged:
            raise ConfigError(f"{key}.monitor={monitor} is never logged: the metrics callback logs val/{monitor}; "
                              f"expected {key}.monitor=val/{monitor}")


def final_checkpoint(trainer, pl_module) -> Path | None:
    """The last.ckpt that holds (or, saved by its callback when training ends, will hold) the final generator;
    None when there is none: no callback saves last.ckpt, or the weights hold NaN/Inf, which GANModelCheckpoint
    never saves (the hint named a file that did not exist after a divergence with action=warn). Checkpoint
    callbacks end training after the others (Lightning runs them last), so the file may not be written yet."""
    saver = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint) and c.save_last), None)
    if saver is None or saver.dirpath is None:
        return None
    path = Path(saver.dirpath) / f"{saver.CHECKPOINT_NAME_LAST}{saver.FILE_EXTENSION}"
    if isinstance(saver, GANModelCheckpoint) and saver._last_global_step_saved != trainer.global_step:
        return path if first_nonfinite_tensor(pl_module) is None else None  # what its on_train_end will save
    return path if path.is_file() else None


def callback_states_left_behind(saved_keys: list[str], callbacks: list) -> list[str]:
    """The callbacks' states a checkpoint holds that no callback of the resumed run takes, each as ``Class`` or
    ``Class (monitor x)``. Lightning keys a state by its callback's class and settings (a checkpoint callback's
    monitor and interval in optimizer steps), so a resume that changes them (n_critic, the metrics' or the
    checkpoints' interval, the monitored metric) restores none of it; Lightning's own warning asked to "add the
    following callbacks" (a README walk-through)."""
    import ast

    current = {getattr(callback, "state_key", None) for callback in callbacks}
    left = []
    for key in saved_keys:
        if key in current:
            continue
        name, brace, settings = key.partition("{")
        try:
            monitor = ast.literal_eval(brace + settings).get("monitor") if brace else None
        except (ValueError, SyntaxError):
            monitor = None
        left.append(f"{name} (monitor {monitor})" if monitor else name)
    return left


def signal_name(signum: int) -> str:
    """``SIGINT (2)``; the number alone for one this platform does not name."""
    try:
        return f"{signal.Signals(signum).name} ({int(signum)})"
    except ValueError:
        return f"signal {int(signum)}"


class GANModelCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint with atomic writes, no non-finite weights, a save when training ends
    between two intervals, and a save before exiting on SIGTERM / SIGINT / SIGUSR1 (then a SLURM requeue).

    ``every_n_train_steps`` is in Lightning's unit (every optimizer step, G's and D's); configs derive it
    from generator steps with the ``optimizer_steps`` resolver. ``save_on_signal`` needs ``save_last``.
    """

    def __init__(self, *args: Any, save_on_signal: bool = True, **kwargs: Any):
        # no "-v1" copies: a run directory holds one run's checkpoints (train.py refuses another run's), so a file
        # of the same name is this run's, to replace. With the counter, a run directory copied or moved and resumed
        # with ckpt_path=last wrote last-v1.ckpt beside a last.ckpt that stayed behind, which the next resume
        # trained from again (an audit)
        kwargs.setdefault("enable_version_counter", False)
        super().__init__(*args, **kwargs)
        self.save_on_signal = save_on_signal
        self.received_signal: int | None = None
        self._handlers_before_fit: dict[int, Any] = {}
        self._saving_checked_at: tuple[int, bool] | None = None
        self.saved_in_fit = False  # whether this fit wrote a file (said at the end when no checkpoint was)

    def _monitor_candidates(self, trainer) -> dict[str, torch.Tensor]:
        """Lightning's values for the file name and the monitor, with ``generator_step``: the shipped name
        ``gstep_{generator_step:07d}`` matches the sample grids' (``samples/gstep_0000300.png``); named by
        Lightning's ``step`` (G's and D's optimizer steps together), a WGAN-GP run's ``step0001800.ckpt`` held
        generator step 300 (an audit)."""
        candidates = super()._monitor_candidates(trainer)
        generator_steps = getattr(trainer.lightning_module, "generator_steps", None)
        if generator_steps is not None:
            candidates["generator_step"] = torch.tensor(int(generator_steps))
        return candidates

    # ---------------------------------------------------------------------------------- finite weights
    def _save_topk_checkpoint(self, trainer, monitor_candidates) -> None:
        if self._weights_are_healthy(trainer):
            if self.save_last:  # last.ckpt follows at this step: its name recorded now, as its own save records it,
                # so the interval file holds the state last.ckpt would (last.ckpt becomes a second name of it)
                self.last_model_path = self.format_checkpoint_name(monitor_candidates, self.CHECKPOINT_NAME_LAST)
            super()._save_topk_checkpoint(trainer, monitor_candidates)

    def _save_last_checkpoint(self, trainer, monitor_candidates) -> None:
        if self._weights_are_healthy(trainer):
            super()._save_last_checkpoint(trainer, monitor_candidates)

    def _weights_are_healthy(self, trainer) -> bool:
        """Checked once per global step, on every rank (DDP ranks hold the same weights)."""
        if self._saving_checked_at is not None and self._saving_checked_at[0] == trainer.global_step:
            return self._saving_checked_at[1]
        module = trainer.lightning_module
        non_finite = non_finite_weights(module.state_dict())  # one scan (a device sync) for the health check and here
        for callback in trainer.callbacks:
            check_now = getattr(callback, "check_now", None)  # the health check: detect before saving
            if callable(check_now) and callback is not self:
                check_now(trainer, module)
                getattr(callback, "check_weights", lambda *_: None)(trainer, module, non_finite)  # divergence too
        bad = non_finite[0] if non_finite else None
        if bad is not None and trainer.is_global_zero:
            log.warning("Not saving a checkpoint at generator step %d: %s holds NaN/Inf values; the saved checkpoints "
                        "are kept as they are", getattr(module, "generator_steps", trainer.global_step), bad)
        # after a divergence the weights may still be finite (a runaway), but they are what diverged: last.ckpt and
        # gstep_*.ckpt held them, so ckpt_path=last resumed the diverged run (an audit). All DDP ranks decide alike.
        from gan.callbacks.gan_health import stop_event

        diverged = (stop_event(trainer) or {}).get("kind") == "divergence"
        if trainer.strategy.reduce_boolean_decision(diverged, all=False) and bad is None:
            bad = "diverged"
        if bad == "diverged" and trainer.is_global_zero:
            log.warning("Not saving a checkpoint at generator step %d: training diverged before it; the saved "
                        "checkpoints are kept as they are", getattr(module, "generator_steps", trainer.global_step))
        self._saving_checked_at = (trainer.global_step, bad is None)
        return bad is None

    # -------------------------------------------------------------------------------------- atomic write
    def _save_checkpoint(self, trainer, filepath: str) -> None:
        temporary = f"{filepath}.tmp"
        saved_now = self._saved_at_this_step(trainer, filepath)
        if trainer.is_global_zero and os.path.lexists(temporary):
            # left by a process killed between writing and renaming: possibly a second name of an interval file,
            # which a save moved into it from another file system (fsspec stages in the temp folder) would overwrite
            os.remove(temporary)
        try:
            if saved_now is not None:
                self._second_name(trainer, saved_now, temporary)
            else:
                super()._save_checkpoint(trainer, temporary)
            if trainer.is_global_zero:  # only rank zero writes files
                os.replace(temporary, filepath)
        except BaseException as error:
            if trainer.is_global_zero and os.path.exists(temporary):
                os.remove(temporary)
            if is_out_of_space(error):
                raise CheckpointError(no_space_message(filepath)) from None
            raise
        self._last_checkpoint_saved = filepath
        self.saved_in_fit = True
        flush_csv_logs(trainer.loggers)  # the rows up to this checkpoint on disk, for a resume after a hard kill

    def _saved_at_this_step(self, trainer, filepath: str) -> str | None:
        """The file this callback wrote at this very global step (the interval's ``gstep_*.ckpt`` when
        ``last.ckpt`` follows it), or None. ``last.ckpt`` of the same step holds the same state, so it becomes a
        second name of that file instead of a second full write (a save at another step, training's end or a
        signal, writes in full: Lightning's ``save_last="link"`` would have linked the older interval file)."""
        # Lightning's record of its last save (every rank's): decided alike on every rank, since a full save is
        # collective (RNG states are gathered)
        path = self._last_checkpoint_saved
        return path if path and self._last_global_step_saved == trainer.global_step and path != filepath else None

    def _second_name(self, trainer, saved: str, temporary: str) -> None:
        """``temporary`` as a hard link to ``saved`` (no bytes written; removing either name leaves the other
        whole), or a copy where the file system has no hard links. What Lightning's save does besides writing
        is done too: the step and path it records, the loggers told (W&B's model upload), the ranks kept in step."""
        if trainer.is_global_zero:
            try:
                os.link(saved, temporary)
            except OSError:
                shutil.copyfile(saved, temporary)
        self._last_global_step_saved = trainer.global_step
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))
        trainer.strategy.barrier("GANModelCheckpoint.second_name")

    # ------------------------------------------------------------------------------------ end of training
    def on_train_end(self, trainer, pl_module) -> None:
        if self.save_last and trainer.global_step != self._last_global_step_saved:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        super().on_train_end(trainer, pl_module)
        if trainer.is_global_zero and self.monitor is None and not self.save_last and trainer.global_step > 0:
            savers = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
            # said once, by the first such callback with an interval (a best-only one with no metric to follow has none)
            candidates = [c for c in savers if c.monitor is None and not c.save_last]
            named = next((c for c in candidates if c._every_n_train_steps), candidates[0])
            if named is self and not any(c.save_last or getattr(c, "saved_in_fit", True) for c in savers):
                log.warning(nothing_saved_message(self, trainer.global_step))

    # -------------------------------------------------------------------------------------------- signals
    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        # before Lightning installs its own handlers (when fit starts): these are restored at teardown
        if threading.current_thread() is threading.main_thread():
            self._handlers_before_fit = {signum: signal.getsignal(signum) for signum in SAVE_ON_SIGNALS}

    def on_train_start(self, trainer, pl_module) -> None:
        self.received_signal = None
        self.saved_in_fit = False
        # only the callback that writes last.ckpt handles signals (a best-only checkpoint has nothing to save)
        if not (self.save_on_signal and self.save_last) or threading.current_thread() is not threading.main_thread():
            return
        for signum in SAVE_ON_SIGNALS:
            before = self._handlers_before_fit.get(signum)
            if signum == signal.SIGUSR1 and before not in (None, signal.SIG_DFL, signal.SIG_IGN):
                continue  # submitit's requeue handler, installed before training: it requeues the job itself
            # Lightning's handlers are replaced, not chained: its SLURM handler saves inside the signal
            # handler, possibly between a D and a G update; its SIGTERM handler would raise at the batch end
            # before our save. Other DDP ranks learn of the signal through the reduction at the batch end.
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame) -> None:
        # the signal's name and the unit the save waits for (it said "signal 2" and "this training step": an audit)
        log.warning("Received %s: saving a checkpoint at the end of this GAN iteration (of this training batch under "
                    "DDP), then exiting", signal_name(signum))
        self.received_signal = signum

    def on_gan_iteration_end(self, trainer, pl_module) -> None:
        """A signal ends the training batch after the iteration it arrived in (a batch may hold several), so the
        save below comes at the next iteration's end, not up to ``iterations_per_batch - 1`` iterations later.
        One process only: under DDP the ranks agree at the batch end, where the reduction is."""
        if self.received_signal is not None and trainer.world_size == 1:
            trainer.should_stop = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if not (self.save_on_signal and self.save_last):
            return
        # every rank must take part in the save, so a signal seen by any rank stops all of them
        if not trainer.strategy.reduce_boolean_decision(self.received_signal is not None, all=False):
            return
        if trainer.global_step != self._last_global_step_saved:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        # the signal itself, agreed by all ranks (the largest number any received): a rank that saw none took SIGTERM,
        # so SIGINT or SIGUSR1 reaching only another rank exited 143 without a requeue (an audit)
        received = torch.tensor(int(self.received_signal or 0), device=trainer.strategy.root_device)
        signum = int(trainer.strategy.reduce(received, reduce_op="max")) or signal.SIGTERM
        if trainer.is_global_zero:
            if self._last_global_step_saved == trainer.global_step:
                log.warning("Saved %s after %s; exiting (continue the run with ckpt_path=%s)", self.last_model_path,
                            signal_name(signum), self.last_model_path)
            else:  # the save was refused (weights not finite, or a divergence before it)
                kept = f"the last checkpoint saved is {self.last_model_path}" if self.last_model_path else \
                    "no checkpoint was saved in this run"
                log.warning("Exiting after %s without a save at this step (see the warning above); %s",
                            signal_name(signum), kept)
        if signum == signal.SIGUSR1 and trainer.is_global_zero:
            self._requeue(trainer)
        raise SystemExit(128 + int(signum))

    @staticmethod
    def _requeue(trainer) -> None:
        job_id = slurm_requeue_job_id(trainer)
        if job_id is None:
            return
        try:
            result = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True)
        except FileNotFoundError:
            log.warning("SLURM job %s not requeued: no scontrol command on this node", job_id)
            return
        if result.returncode == 0:
            log.info("Requeued SLURM job %s; it resumes from the checkpoint just saved", job_id)
        else:
            log.warning("Requeuing SLURM job %s failed (scontrol exit status %d): %s", job_id, result.returncode, result.stderr.strip())

    def teardown(self, trainer, pl_module, stage: str) -> None:
        # Lightning restores the handlers it replaced before this hook runs; the ones captured in setup are
        # the same, so a SIGTERM after training (during the W&B finish, between multirun jobs) ends the process
        for signum, handler in self._handlers_before_fit.items():
            if handler is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signum, handler)
        self._handlers_before_fit = {}
        super().teardown(trainer, pl_module, stage)
