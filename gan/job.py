"""One ``train.py`` job from the command line: the checks of its options, its outcome (the error line, exit status or
warning a user reads) and, in a multirun, its row in the sweep's summary.csv and what the sweeper is told.

``train.train`` fits a run and knows nothing of Hydra's modes; this is what ``train.main`` adds around it:

- a refusal every trial of a sweep would share (an objective that is never logged, a search space no trial uses, a
  strategy that would run the sweep again in each process) stops the sweep at its first job whatever
  ``failed_trial_value``;
- a job's row is ``running`` when it starts (a job cut off by another's error in a parallel launcher stays so), then
  ``completed``, ``stopped`` (a health check's action=stop, ``trainer.max_time``), ``diverged`` or ``failed`` with
  its error line;
- a diverged job is recorded and the sweep goes on (the sweeper gets ``failed_trial_value``, or None: a failed trial);
  a failed one stops the sweep unless ``failed_trial_value`` is set, which it then returns.
"""
from __future__ import annotations

import copy
import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from gan.callbacks.gan_health import describe
from gan.utils.config import (check_preset_fits_choices, check_run_options, experiment_model_replaced, groups_under_a_preset,
                              options_under_a_schedule, options_whose_switch_is_off, slurm_batch_job_id,
                              top_level_keys_nothing_reads)
from gan.utils.distributed import local_rank
from gan.utils.errors import (ConfigError, TrainingDiverged, message_of, one_line, print_error, stop_on_user_error,
                              user_error_behind)
from gan.utils.provenance import code_label
from gan.utils.sweep import check_failed_trial_value, fail_stopped_trial, objective, parse_overrides, write_result, write_summary
from gan.utils.targets import import_modules

log = logging.getLogger("gan")


class Job:
    """A ``train.py`` job: ``check_options()``, then ``start()``, then ``train.train``; then ``finished(metrics,
    objects)`` for the value the sweeper gets, or ``failed(error)`` when anything raised (None: raise it again)."""

    def __init__(self, cfg: DictConfig, hydra_cfg: DictConfig):
        self.cfg, self.hydra_cfg = cfg, hydra_cfg
        self.multirun = hydra_cfg.mode == RunMode.MULTIRUN
        self.in_sweep = self.multirun and rank_zero_only.rank == 0  # rank 0 keeps the row (DDP under SLURM)
        self.failed_value = cfg.get("failed_trial_value")
        self.started = time.time()
        # whether an error now is a refusal every trial would share: no failed_trial_value lets the sweep go on then
        self._stops_the_sweep = False

    def check_options(self) -> None:
        """The run's options, and those a sweep needs, before anything is built; then the warnings of options that
        will not act as written (once, not once per DDP process)."""
        cfg, choices, task = self.cfg, self.hydra_cfg.runtime.choices, self.hydra_cfg.overrides.task
        import_modules(cfg.get("imports"))  # a user's own metrics register themselves before their names are checked
        if rank_zero_only.rank == 0:  # before the checks: an experiment's options that do not fit the model may be refused
            for line in experiment_model_replaced(choices):
                log.warning(line)
        check_run_options(cfg)  # before check_objective reads generator_steps (train() checks again for API callers)
        self._stops_the_sweep = True
        if self.multirun:
            check_no_processes_started_in_a_sweep(cfg.trainer, OmegaConf.select(self.hydra_cfg, "launcher._target_"),
                                                  choices.get("trainer"))
        check_preset_fits_choices(cfg, choices.get("preset@_global_"), task)
        check_objective(cfg)
        check_search_space(OmegaConf.select(cfg, "model.schedules"), OmegaConf.select(self.hydra_cfg, "sweeper.params"))
        self._stops_the_sweep = False
        if rank_zero_only.rank == 0:
            for line in [*groups_under_a_preset(choices.get("preset@_global_"), task),
                         *options_under_a_schedule(OmegaConf.select(cfg, "model.schedules"), task),
                         *options_whose_switch_is_off(cfg, task),
                         *top_level_keys_nothing_reads(cfg, task, hydra_cfg=self.hydra_cfg)]:
                log.warning(line)

    def start(self) -> None:
        if self.in_sweep:
            self.record("running")

    def failed(self, error: Exception) -> float | None:
        """``error`` raised by the checks or by training, recorded: ``failed_trial_value`` when the sweep goes on with
        it, else None, and the caller raises the error again (the entry point prints a user error's line and exits
        with 2; any other keeps its traceback, unchanged)."""
        user_error = user_error_behind(error)
        goes_on = self.in_sweep and self.failed_value is not None and not self._stops_the_sweep
        if self.in_sweep:
            message = one_line(message_of(user_error)) if user_error else f"{type(error).__name__}: {error}".splitlines()[0]
            self.record("failed", float(self.failed_value) if goes_on else None, error=message)
        if not goes_on:
            if self.in_sweep:
                tell_stopped_trial(self.hydra_cfg.sweeper, list(self.hydra_cfg.overrides.task))
            return None
        if user_error is not None and os.environ.get("HYDRA_FULL_ERROR") != "1":
            print_error(user_error)
        else:
            log.error("Job failed", exc_info=error)
        log.warning("The sweep goes on with failed_trial_value=%s", self.failed_value)
        return float(self.failed_value)

    def finished(self, metrics: dict[str, float], objects: dict[str, Any]) -> float | None:
        """The value the sweeper gets (``optimized_metric``), after training returned: a diverged run raises
        :class:`TrainingDiverged` (status 3) outside a sweep; a run stopped before ``generator_steps`` says so in a
        warning line (status 0)."""
        stopped_by = objects["stopped_by"]
        if stopped_by is not None and stopped_by["kind"] == "divergence":
            message = f"training diverged: {describe(stopped_by)}"
            if not self.in_sweep:
                raise TrainingDiverged(message)
            value = None if self.failed_value is None else float(self.failed_value)
            self.record("diverged", value, metrics, error=message)
            print_error(message)
            return value
        value = objective(metrics, self.cfg.get("optimized_metric"), self.failed_value if self.in_sweep else None)
        trained, planned = int(objects["module"].generator_steps), int(self.cfg.generator_steps)
        if stopped_by is not None or trained < planned:  # a health check's action=stop, trainer.max_time, a callback
            if stopped_by is not None:
                reason = f"stopped by GAN health: {describe(stopped_by)} (action={stopped_by.get('action')})"
            else:
                max_time = OmegaConf.select(self.cfg, "trainer.max_time")
                reason = (f"stopped at generator step {trained} of generator_steps={planned}"
                          + (f" (trainer.max_time={max_time} reached)" if max_time else ""))
            if rank_zero_only.rank == 0:  # the log file has it; stderr gets the one line too, as for divergence
                log.warning("%s; the run did not train to the end", reason)
                print(f"warning: {one_line(reason)}; the run did not train to the end", file=sys.stderr, flush=True)
            if self.in_sweep:
                self.record("stopped", value, metrics, error=reason)
            return value
        if self.in_sweep:
            self.record("completed", value, metrics)
        return value

    def record(self, status: str, value: float | None = None, metrics: dict[str, float] | None = None,
               error: str | None = None) -> None:
        """This job's row: its ``result.json``, then the sweep's summary.csv rewritten from every job's."""
        write_result(self.cfg.paths.output_dir, {
            "job": self.hydra_cfg.job.num, "status": status, "objective": value,
            "seconds": round(time.time() - self.started, 1), "code": code_label(),
            "overrides": parse_overrides(list(self.hydra_cfg.overrides.task)),
            "metrics": metrics or {}, "error": error,
        })
        summary = write_summary(self.hydra_cfg.sweep.dir)
        if status != "running":  # once per job, with its result (a 2-job sweep said it four times: an audit)
            log.info("Sweep summary: %s", summary)


def check_no_processes_started_in_a_sweep(trainer: DictConfig, launcher: str | None, choice: str | None = None) -> None:
    """A multirun job under a strategy that starts processes (``trainer=ddp_cpu``, ``trainer=ddp``): Lightning starts
    the other ranks by running the command line again, which re-ran the whole sweep; an audit saw rank 1 refuse the
    sweep folder rank 0 had just made ("already holds a sweep"), then Lightning kill every process (status 137) and
    leave the job's row ``running``. Under Hydra's SLURM launcher the processes are SLURM's tasks and none is started.
    ``choice``: the trainer config chosen (``ddp_cpu``), named first as the user wrote it."""
    from gan.utils.instantiate import process_count

    if "submitit" in str(launcher or "").lower() or "ddp" not in str(trainer.get("strategy", "")):
        return
    processes = (process_count(trainer.get("devices", "auto"), trainer.get("accelerator")) or 1) * \
        (process_count(trainer.get("num_nodes", 1), None) or 1)
    if processes > 1:
        resolved = f"trainer.strategy={trainer.get('strategy')}, trainer.devices={trainer.get('devices')}"
        chosen = f"trainer={choice} ({resolved})" if choice else resolved
        raise ConfigError(f"{chosen} in a multirun (-m): Lightning starts the other processes by running the command "
                          "line again, which would run the sweep again in each; expected one run per command (python "
                          "train.py trainer=... without -m), or DDP jobs swept with hydra/launcher=slurm")


def tell_stopped_trial(sweeper, task_overrides: list[str]) -> None:
    """The stopped job's Optuna trial marked failed in its stored study (see fail_stopped_trial); a problem doing so
    is a warning, so that the job's own error stays the line the user reads."""
    try:
        number = fail_stopped_trial(sweeper, task_overrides)
    except Exception as error:  # the storage may be what failed; the job's error matters more
        log.warning("could not mark this job's Optuna trial failed (%s: %s)", type(error).__name__, error)
        return
    if number is not None:
        log.info("Optuna trial %d marked failed in %s", number, sweeper.get("storage"))


def check_objective(cfg: DictConfig) -> None:
    """``optimized_metric`` must be a value the metrics callback logs during this run (``val/<name>`` of a
    selected metric, scored at some interval). Checked before training: a name that is never logged would
    make every sweep trial return ``failed_trial_value`` and the study "succeed" on constants. So is
    ``failed_trial_value``: a number, on the losing side of the sweeper's direction when it has one."""
    from hydra.core.hydra_config import HydraConfig

    name = cfg.get("optimized_metric")
    direction = OmegaConf.select(HydraConfig.get(), "sweeper.direction") if HydraConfig.initialized() else None
    check_failed_trial_value(cfg.get("failed_trial_value"), name, direction)
    if not name:
        return
    from gan.metrics.registry import logged_directions

    metrics = cfg.get("metrics") or {}
    selected = list(metrics.get("compute") or [])
    logged = sorted(logged_directions(selected))
    if name not in logged:
        raise ConfigError(f"optimized_metric={name} is not logged by this run: its metrics ({', '.join(selected) or 'none'}) "
                          f"log {logged or 'nothing'}; pick one of those or add its metric (e.g. metrics=[fid_digits])")
    every = int(metrics.get("every_n_generator_steps") or 0)
    if every <= 0 or OmegaConf.select(cfg, "callbacks.metrics") is None:
        raise ConfigError(f"optimized_metric={name} is never logged: no metric is scored during training "
                          f"(metrics.every_n_generator_steps={every}{', callbacks.metrics=null' if every > 0 else ''}); "
                          "set metrics.every_n_generator_steps (e.g. 1000) and keep the metrics callback")
    if every > int(cfg.generator_steps):
        raise ConfigError(f"optimized_metric={name} is never logged: it is first scored at generator step {every} "
                          f"(metrics.every_n_generator_steps) and the run trains generator_steps={cfg.generator_steps}; "
                          "lower the interval or train longer")


def check_search_space(schedules: DictConfig | None, searched: DictConfig | None) -> None:
    """A sweeper searching an optimizer option that a schedule sets at every step (the learning rates under
    ``model=r3gan``) would run a study in which no trial differs from another: stopped before the first."""
    unused = options_under_a_schedule(schedules, [f"{key}={space}" for key, space in (searched or {}).items()])
    if unused:
        raise ConfigError(f"hydra.sweeper.params searches an option no trial would use: {unused[0]}; with a scheduled "
                          "learning rate (model=r3gan; model=gan on the 2D toys, which uses its recipe) search the schedules "
                          "instead: hparams_search=optuna_r3gan")


# ------------------------------------------------------------------------------------------------ the run folder
def checkpoint_dir(cfg: DictConfig) -> Path:
    return Path(OmegaConf.select(cfg, "callbacks.model_checkpoint.dirpath") or f"{cfg.paths.output_dir}/checkpoints")


def checkpoint_to_resume(cfg: DictConfig) -> str | None:
    """``ckpt_path``; ``last`` means this run directory's last.ckpt if there is one (None: start from scratch). In a
    SLURM batch job no ``ckpt_path`` means ``last``: its run directory is named after the job id and command line,
    so a last.ckpt there was written by an earlier start of this very job, which SLURM requeued."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is None and slurm_batch_job_id() is not None:
        ckpt_path = "last"
    if ckpt_path != "last":
        return ckpt_path
    last = checkpoint_dir(cfg) / "last.ckpt"
    return str(last) if last.is_file() else None


def check_checkpoints_are_this_runs(cfg: DictConfig, ckpt_path: str | None) -> None:
    """A run's checkpoint folder holds no other run's checkpoints: Lightning would write this run's beside them
    (``last-v1.ckpt``), and ``last.ckpt``, which ``ckpt_path=last``, evaluate.py and the end-of-run hint read,
    would stay the other run's. Resuming from a checkpoint in that folder continues the run that wrote it."""
    folder = checkpoint_dir(cfg)
    if ckpt_path is not None and Path(ckpt_path).resolve().parent == folder.resolve():
        return
    others = sorted(path.name for path in folder.glob("*.ckpt")) if folder.is_dir() else []
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise ConfigError(f"paths.output_dir={cfg.paths.output_dir} already holds another run's checkpoints ({shown} in "
                          f"{folder}); expected a new run directory, or ckpt_path=last to continue that run")


@contextmanager
def as_its_job_sees_it(config: DictConfig) -> Iterator[DictConfig]:
    """A single run's config before Hydra starts its job, with ``${hydra:runtime.output_dir}`` (``paths.output_dir``)
    resolving to the folder the job will get, as Hydra's run_job sets it."""
    run_dir = os.path.abspath(str(OmegaConf.select(config, "hydra.run.dir")))  # caches ${now:...} for the job too
    job = copy.deepcopy(config)
    with open_dict(job.hydra.runtime), read_write(job.hydra.runtime):
        job.hydra.runtime.output_dir = run_dir
    hydra_config = HydraConfig.instance()
    before = hydra_config.cfg
    hydra_config.set_config(job)
    try:
        yield job
    finally:
        hydra_config.cfg = before


class RunFolderCheck(Callback):  # Hydra calls every hook of every callback: the base class's do nothing
    """A Hydra callback (``hydra.callbacks`` in conf/train.yaml). Before a single run's job starts, so before Hydra
    writes its .hydra/ files and train.log into the run folder: a folder of another run's checkpoints is refused, and
    that run's config, overrides and log stay as they were (train.py checked it only once Hydra had overwritten them:
    a walk-through of the README). train.py checks again for the Python API and multirun jobs, whose sweep folder
    is checked to be new when the sweep starts."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if local_rank() != 0:  # the node's other ranks start into the folder rank 0 checked
            return

        def check() -> None:
            with as_its_job_sees_it(config) as job:
                check_checkpoints_are_this_runs(job, checkpoint_to_resume(job))

        stop_on_user_error(check)
