"""Train a GAN: ``python train.py model=wgan_gp data=toy2d_grid`` (Hydra overrides, ``-m`` for multirun)."""
from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import hydra
import lightning.pytorch as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

import gan  # noqa: F401  (registers the config resolvers)
from gan.callbacks.checkpoint import check_checkpoint_callbacks
from gan.callbacks.gan_health import describe, stop_event
from gan.callbacks.metrics import check_metrics_fit
from gan.callbacks.resume import ResumeState, wandb_run_id
from gan.schedules import parts_beyond_the_run
from gan.utils.checkpoint import (check_optimizer_states_fit, check_resumable, check_resume_length, load_checkpoint,
                                  options_changed_since, trained_generator_steps)
from gan.utils.config import (check_preset_fits_choices, check_run_options, experiment_model_replaced, groups_under_a_preset,
                              options_under_a_schedule, options_whose_switch_is_off, options_without_effect, slurm_batch_job_id,
                              top_level_keys_nothing_reads)
from gan.utils.console import console_once_per_run, lightning_logs_through_root
from gan.utils.distributed import local_rank
from gan.utils.errors import (ConfigError, TrainingDiverged, composition_errors_in_one_line, exit_on_user_error, message_of, one_line, print_error, user_error_behind)
from gan.utils.instantiate import build, build_module, build_trainer, instantiate_group
from gan.utils.csv_log import continue_csv_logs
from gan.utils.logging import check_logger_options, finish_loggers, prepare_loggers
from gan.utils.sweep import fail_stopped_trial, objective, parse_overrides, write_result, write_summary

log = logging.getLogger("gan")
#: torch's thread count when this process started (one per core unless OMP_NUM_THREADS says otherwise)
PROCESS_THREADS = torch.get_num_threads()


def train(cfg: DictConfig, callbacks: Sequence[pl.Callback] = ()) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit one run (``callbacks``: extra ones, e.g. a benchmark's clock); returns the final logged metrics
    and the objects built for it, ``stopped_by`` being the health detection that stopped training (None when
    it ran to the end)."""
    lightning_logs_through_root()
    console_once_per_run()
    check_run_options(cfg)
    check_checkpoint_callbacks(cfg)  # intervals and monitors the checkpoint callbacks could not act on
    check_logger_options(cfg.get("logger"))
    for line in options_without_effect(cfg):
        log.warning(line)
    # null: the process's own count, set back (in a multirun a job after one with cpu_threads kept that job's, so it
    # trained on another count than the same job alone: an audit)
    torch.set_num_threads(int(cfg.cpu_threads) if cfg.get("cpu_threads") else PROCESS_THREADS)
    pl.seed_everything(cfg.seed, workers=True)
    ckpt_path = resume_checkpoint(cfg)
    if local_rank() == 0:  # the node's other ranks start after it, or with it, into the folder it checked
        check_checkpoints_are_this_runs(cfg, ckpt_path)
    checkpoint = load_checkpoint(ckpt_path) if ckpt_path is not None else None
    if checkpoint is not None:
        check_resume_length(checkpoint, ckpt_path, int(cfg.generator_steps))
        continue_with_the_checkpoints_seed(cfg, checkpoint, ckpt_path)
        continue_wandb_run(cfg, checkpoint)
    datamodule = build(cfg.data)
    # Local rank 0 prepares (downloads) and reads the data now, to fail before anything is built. The other
    # ranks of a node wait for it inside trainer.fit, where Lightning runs prepare_data on local rank 0 behind
    # a barrier and then sets up every rank: processes started together (torchrun, srun) must not race the
    # download, and those Lightning starts itself begin after this point anyway.
    first_on_node = local_rank() == 0
    if first_on_node:
        datamodule.prepare_data()
        datamodule.setup("fit")
    module = build_module(cfg)
    if rank_zero_only.rank == 0:
        for line in parts_beyond_the_run(module.schedules, int(cfg.generator_steps)):
            log.warning(line)
    resumed_at = None  # the generator step a resumed run starts after
    if checkpoint is not None:
        resumed_at = trained_generator_steps(checkpoint)
        check_resumable(checkpoint, ckpt_path, module.state_dict(), module.run_config)
        check_optimizer_states_fit(checkpoint, ckpt_path, module.optimized_parameters())  # no second set of optimizers
        changed = options_changed_since(checkpoint.get("run_config") or {}, module.run_config)
        if changed:  # allowed (a resumed run may change a learning rate on purpose), but the run is then not exact
            # Lightning keys a checkpoint callback's saved state by its interval in optimizer steps, which the
            # number of updates per iteration changes: that state (the best score behind best.ckpt) is then not restored
            anew = any(line.startswith(("model.n_critic:", "model.n_generator:")) for line in changed)
            log.warning("resuming %s with options that differ from its run (the run goes on with the new values): %s%s",
                        ckpt_path, "; ".join(changed), "; the checkpoint callbacks count their intervals in optimizer "
                        "steps, which these change, so their state (the best score behind best.ckpt) starts anew" if anew else "")
        warn_of_another_thread_count(cfg, checkpoint, ckpt_path)
        del checkpoint  # Lightning reads the file again in fit; a large model's second copy would only take memory
    if first_on_node:
        datamodule.check_sample_shape(module.generator.sample_shape)
    module.check_batch_size(int(datamodule.batch_size))
    module.check_data_classes(datamodule)  # before the loggers start (W&B prints its start-up lines and opens a run)
    if OmegaConf.select(cfg, "callbacks.metrics") is not None:  # before the callback loads its feature networks
        check_metrics_fit(cfg.metrics, datamodule, getattr(module.sampling_generator, "num_classes", None))
    # RNG states, data position and W&B run id: what an exact resume needs beyond Lightning's checkpoint
    callbacks = instantiate_group(cfg.get("callbacks")) + [ResumeState(), *callbacks]
    loggers = instantiate_group(cfg.get("logger"))
    prepare_loggers(loggers)
    if resumed_at is not None:
        continue_csv_logs(loggers, resumed_at)
    trainer = build_trainer(cfg.trainer, callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(module.run_config)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    finally:
        finish_loggers(loggers)
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    stopped_by = stop_event(trainer)
    if trainer.is_global_zero:  # once, not once per DDP process
        log.info("Run directory: %s", cfg.paths.output_dir)
    return metrics, {"cfg": cfg, "datamodule": datamodule, "module": module, "trainer": trainer, "stopped_by": stopped_by}


def continue_with_the_checkpoints_seed(cfg: DictConfig, checkpoint: dict[str, Any], path: str) -> None:
    """A resumed run takes the seed of the run it continues: the data sampler's shuffle order follows the seed
    (the checkpoint restores the position in it, and the RNG states), so a resume without ``seed=`` of a run
    trained with another seed trained on other batches, with other weights and no word (an audit)."""
    saved = (checkpoint.get("run_config") or {}).get("seed")
    if saved is None or saved == cfg.seed:
        return
    log.warning("resuming %s with the seed of its run, seed=%s (its data order and random states continue), not "
                "seed=%s", path, saved, cfg.seed)
    with open_dict(cfg):
        cfg.seed = saved
    pl.seed_everything(saved, workers=True)


def resume_checkpoint(cfg: DictConfig) -> str | None:
    """``ckpt_path``; ``last`` means this run directory's last.ckpt if there is one (a requeued job). In a SLURM
    batch job no ``ckpt_path`` means ``last``: its run directory is named after the job id and command line,
    so a last.ckpt there was written by an earlier start of this very job, which SLURM requeued."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is None and slurm_batch_job_id() is not None:
        ckpt_path = "last"
    if ckpt_path != "last":
        return ckpt_path
    last = checkpoint_dir(cfg) / "last.ckpt"
    if last.is_file():
        log.info("Resuming from %s", last)
        return str(last)
    log.info("ckpt_path=last: no %s yet, starting from scratch", last)
    return None


def checkpoint_dir(cfg: DictConfig) -> Path:
    return Path(OmegaConf.select(cfg, "callbacks.model_checkpoint.dirpath") or f"{cfg.paths.output_dir}/checkpoints")


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


def continue_wandb_run(cfg: DictConfig, checkpoint: dict[str, Any]) -> None:
    """Log a resumed run into the W&B run that wrote the checkpoint (unless an id was given)."""
    run_id = wandb_run_id(checkpoint)
    wandb = OmegaConf.select(cfg, "logger.wandb")
    if run_id is None or wandb is None or wandb.get("id"):
        return
    with open_dict(cfg):
        wandb.id = run_id
    log.info("Continuing W&B run %s", run_id)


def warn_of_another_thread_count(cfg: DictConfig, checkpoint: dict[str, Any], ckpt_path: str) -> None:
    """A run resumed on the CPU with another thread count than it trained with goes on correctly but not bit for bit
    as it would have: sums split across threads add in another order (an audit measured 42 of r3gan's tensors
    differing after 20 steps on 1 thread against 2)."""
    saved, now = checkpoint.get("cpu_threads"), torch.get_num_threads()
    on_cpu = str(OmegaConf.select(cfg, "trainer.accelerator")) == "cpu" or not torch.cuda.is_available()
    if on_cpu and saved is not None and int(saved) != now:
        log.warning("%s trained on %d CPU threads, this run has %d: sums split across threads add in another order, so it "
                    "will not be bit-identical to an uninterrupted run; cpu_threads=%d resumes it exactly", ckpt_path,
                    int(saved), now, int(saved))


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float | None:
    """One job. A user error (bad option, missing data, ...) is one line, ``error: <message>``, and exit
    status 2; a run stopped by divergence, one line and status 3 (see gan/utils/errors.py); a run stopped
    before ``generator_steps`` by another health check (action stop) or by ``trainer.max_time``, a warning
    line and status 0.

    In a multirun every job adds its row to the sweep's summary.csv, as ``running`` when it starts (a job cut
    off by another's error in a parallel launcher stays so), then with its outcome and the error line of a job
    that did not complete. A diverged job is recorded as ``diverged``, a stopped one as ``stopped``, and the
    sweep goes on; a failed one (its options refused, or training raised) stops the sweep unless
    ``failed_trial_value`` is set, which it then returns so the sweeper goes on. An objective that is never
    logged, or a search space no trial would use, stops the sweep at its first job whatever
    ``failed_trial_value`` (every trial would fail alike)."""
    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN and rank_zero_only.rank == 0
    failed_value = cfg.get("failed_trial_value")
    started = time.time()
    stops_the_sweep = False  # a refusal every trial would share: no failed_trial_value lets the sweep go on
    try:
        if rank_zero_only.rank == 0:  # before the checks: an experiment's options that do not fit the model may be refused
            for line in experiment_model_replaced(hydra_cfg.runtime.choices):
                log.warning(line)
        check_run_options(cfg)  # before check_objective reads generator_steps (train() checks again for API callers)
        stops_the_sweep = True
        if hydra_cfg.mode == RunMode.MULTIRUN:
            check_no_processes_started_in_a_sweep(cfg.trainer, OmegaConf.select(hydra_cfg, "launcher._target_"))
        check_preset_fits_choices(cfg, hydra_cfg.runtime.choices.get("preset@_global_"), hydra_cfg.overrides.task)
        check_objective(cfg)
        check_search_space(OmegaConf.select(cfg, "model.schedules"), OmegaConf.select(hydra_cfg, "sweeper.params"))
        stops_the_sweep = False
        if rank_zero_only.rank == 0:  # said once, not by every DDP process
            for line in groups_under_a_preset(hydra_cfg.runtime.choices.get("preset@_global_"), hydra_cfg.overrides.task):
                log.warning(line)
            for line in options_under_a_schedule(OmegaConf.select(cfg, "model.schedules"), hydra_cfg.overrides.task):
                log.warning(line)
            for line in options_whose_switch_is_off(cfg, hydra_cfg.overrides.task):
                log.warning(line)
            for line in top_level_keys_nothing_reads(cfg, hydra_cfg.overrides.task, hydra_cfg=hydra_cfg):
                log.warning(line)
        if in_sweep:
            record_job(cfg, "running", None, {}, started)
        metrics, objects = train(cfg)
    except Exception as error:
        user_error = user_error_behind(error)
        goes_on = in_sweep and failed_value is not None and not stops_the_sweep
        if in_sweep:
            message = one_line(message_of(user_error)) if user_error else f"{type(error).__name__}: {error}".splitlines()[0]
            record_job(cfg, "failed", float(failed_value) if goes_on else None, {}, started, error=message)
        if not goes_on:
            if in_sweep:
                tell_stopped_trial(hydra_cfg.sweeper, list(hydra_cfg.overrides.task))
            raise
        if user_error is not None and os.environ.get("HYDRA_FULL_ERROR") != "1":
            print_error(user_error)
        else:
            log.exception("Job failed")
        log.warning("The sweep goes on with failed_trial_value=%s", failed_value)
        return float(failed_value)
    stopped_by = objects["stopped_by"]
    if stopped_by is not None and stopped_by["kind"] == "divergence":
        message = f"training diverged: {describe(stopped_by)}"
        if not in_sweep:
            raise TrainingDiverged(message)
        value = None if failed_value is None else float(failed_value)
        record_job(cfg, "diverged", value, metrics, started, error=message)
        print_error(message)
        return value
    value = objective(metrics, cfg.get("optimized_metric"), failed_value if in_sweep else None)
    trained, planned = int(objects["module"].generator_steps), int(cfg.generator_steps)
    if stopped_by is not None or trained < planned:  # a health check's action=stop, trainer.max_time, a callback
        if stopped_by is not None:
            reason = f"stopped by GAN health: {describe(stopped_by)} (action={stopped_by.get('action')})"
        else:
            max_time = OmegaConf.select(cfg, "trainer.max_time")
            reason = (f"stopped at generator step {trained} of generator_steps={planned}"
                      + (f" (trainer.max_time={max_time} reached)" if max_time else ""))
        if rank_zero_only.rank == 0:  # the log file has it; stderr gets the one line too, as for divergence
            log.warning("%s; the run did not train to the end", reason)
            print(f"warning: {one_line(reason)}; the run did not train to the end", file=sys.stderr, flush=True)
        if in_sweep:
            record_job(cfg, "stopped", value, metrics, started, error=reason)
        return value
    if in_sweep:
        record_job(cfg, "completed", value, metrics, started)
    return value


def check_no_processes_started_in_a_sweep(trainer: DictConfig, launcher: str | None) -> None:
    """A multirun job under a strategy that starts processes (``trainer=ddp_cpu``, ``trainer=ddp``): Lightning starts
    the other ranks by running the command line again, which re-ran the whole sweep; an audit saw rank 1 refuse the
    sweep folder rank 0 had just made ("already holds a sweep"), then Lightning kill every process (status 137) and
    leave the job's row ``running``. Under Hydra's SLURM launcher the processes are SLURM's tasks and none is started."""
    from gan.utils.instantiate import process_count

    if "submitit" in str(launcher or "").lower() or "ddp" not in str(trainer.get("strategy", "")):
        return
    processes = (process_count(trainer.get("devices", "auto"), trainer.get("accelerator")) or 1) * \
        (process_count(trainer.get("num_nodes", 1), None) or 1)
    if processes > 1:
        raise ConfigError(f"trainer.strategy={trainer.get('strategy')} with trainer.devices={trainer.get('devices')} in a "
                          "multirun (-m): Lightning starts the other processes by running the command line again, which "
                          "would run the sweep again in each; expected one run per command (python train.py trainer=... "
                          "without -m), or DDP jobs swept with hydra/launcher=slurm")


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
    from gan.utils.sweep import check_failed_trial_value

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


def record_job(cfg: DictConfig, status: str, value: float | None, metrics: dict[str, float], started: float,
               error: str | None = None) -> None:
    hydra_cfg = HydraConfig.get()
    write_result(cfg.paths.output_dir, {
        "job": hydra_cfg.job.num, "status": status, "objective": value, "seconds": round(time.time() - started, 1),
        "overrides": parse_overrides(list(hydra_cfg.overrides.task)), "metrics": metrics, "error": error,
    })
    summary = write_summary(hydra_cfg.sweep.dir)
    log.info("Sweep summary: %s", summary)


if __name__ == "__main__":
    composition_errors_in_one_line()
    main()
