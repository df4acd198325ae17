"""Train a GAN: ``python train.py model=wgan_gp data=toy2d_grid`` (Hydra overrides, ``-m`` for multirun)."""
from __future__ import annotations

import logging
from typing import Any, Sequence

import hydra
import lightning.pytorch as pl
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

import gan  # noqa: F401  (registers the config resolvers)
from gan.callbacks.checkpoint import (callback_states_left_behind, check_checkpoint_callbacks,
                                     leave_out_a_best_checkpoint_that_ranks_nothing)
from gan.callbacks.gan_health import stop_event
from gan.callbacks.machines import RecordMachines
from gan.callbacks.metrics import check_metrics_fit
from gan.callbacks.resume import ResumeState, wandb_run_id
from gan.data import check_data_module_class
from gan.module import GAN_CALLBACK_HOOKS
from gan.job import Job, check_checkpoints_are_this_runs, checkpoint_dir, checkpoint_to_resume
from gan.schedules import parts_beyond_the_run
from gan.utils.checkpoint import (ServeCheckedCheckpoint, check_optimizer_states_fit, check_resumable,
                                  check_resume_length, load_checkpoint, options_changed_since, trained_generator_steps)
from gan.utils.config import check_run_options, options_without_effect, slurm_batch_job_id
from gan.utils.console import console_once_per_run, lightning_logs_through_root
from gan.utils.distributed import local_rank
from gan.utils.errors import (TrainingDiverged, composition_errors_in_one_line, exit_on_user_error,
                              user_error_behind)
from gan.utils.instantiate import build, build_module, build_trainer, instantiate_group
from gan.utils.csv_log import continue_csv_logs
from gan.utils.provenance import record_start
from gan.utils.targets import import_modules
from gan.utils.logging import check_logger_options, finish_loggers, prepare_loggers, run_hyperparameters

log = logging.getLogger("gan")
#: torch's thread count when this process started (one per core unless OMP_NUM_THREADS says otherwise)
PROCESS_THREADS = torch.get_num_threads()


def train(cfg: DictConfig, callbacks: Sequence[pl.Callback] = ()) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit one run (``callbacks``: extra ones, e.g. a benchmark's clock); returns the final logged metrics
    and the objects built for it, ``stopped_by`` being the health detection that stopped training (None when
    it ran to the end)."""
    lightning_logs_through_root()
    console_once_per_run()
    import_modules(cfg.get("imports"))
    check_run_options(cfg)
    check_checkpoint_callbacks(cfg)  # intervals and monitors the checkpoint callbacks could not act on
    leave_out_a_best_checkpoint_that_ranks_nothing(cfg)
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
    check_data_module_class(cfg.data.get("_target_"))  # before build's option check blames its options
    datamodule = build(cfg.data)
    check_data_module_class(datamodule)  # what a factory function (a _target_ that is no class) returned
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
    saved_provenance = None  # the starts of the run a checkpoint continues
    if checkpoint is not None:
        resumed_at = trained_generator_steps(checkpoint)
        check_resumable(checkpoint, ckpt_path, module.state_dict(), module.run_config)
        check_optimizer_states_fit(checkpoint, ckpt_path, module.optimized_parameters())  # no second set of optimizers
        changed = options_changed_since(checkpoint.get("run_config") or {}, module.run_config)
        if changed:  # allowed (a resumed run may change a learning rate on purpose), but the run is then not exact
            log.warning("resuming %s with options that differ from its run (the run goes on with the new values): %s",
                        ckpt_path, "; ".join(changed))
        saved_callback_states = list(checkpoint.get("callbacks") or {})
        saved_provenance = checkpoint.get("provenance")
    if first_on_node:  # both networks: a discriminator built for another shape failed only at its first batch
        for name, network in (("generator", module.generator), ("discriminator", module.discriminator)):
            datamodule.check_sample_shape(network.sample_shape, f"the {name} ({type(network).__name__})")
    module.check_batch_size(int(datamodule.batch_size))
    module.check_data_classes(datamodule)  # before the loggers start (W&B prints its start-up lines and opens a run)
    if OmegaConf.select(cfg, "callbacks.metrics") is not None:  # before the callback loads its feature networks
        check_metrics_fit(cfg.metrics, datamodule, getattr(module.sampling_generator, "num_classes", None))
    # RNG states, data position and W&B run id: what an exact resume needs beyond Lightning's checkpoint; and every
    # rank's machine in the run's provenance (rank 0's alone is known before the process group exists)
    callbacks = instantiate_group(cfg.get("callbacks"), kind=pl.Callback, hooks=GAN_CALLBACK_HOOKS) + [
        ResumeState(), RecordMachines(cfg.paths.output_dir), *callbacks]
    loggers = instantiate_group(cfg.get("logger"), kind=Logger)
    prepare_loggers(loggers)
    if resumed_at is not None:
        continue_csv_logs(loggers, resumed_at)
    if resumed_at is not None and rank_zero_only.rank == 0:
        left = callback_states_left_behind(saved_callback_states, callbacks)
        if left:
            log.warning("resuming %s: the saved state of %s is not restored: Lightning keys a callback's state by its "
                        "settings (a checkpoint callback's monitor and interval in optimizer steps), which the options "
                        "changed, so the best score behind best.ckpt and the interval counts start anew", ckpt_path,
                        ", ".join(left))
    trainer = build_trainer(cfg.trainer, callbacks, logger=loggers or False)
    if checkpoint is not None:  # fit restores from the copy read and checked above instead of reading the file again
        trainer.strategy.checkpoint_io = ServeCheckedCheckpoint(trainer.strategy.checkpoint_io, ckpt_path, checkpoint)
        del checkpoint  # the IO holds the one copy until fit takes it
    if rank_zero_only.rank == 0:  # which code, libraries and machine (gan/utils/provenance.py), once nothing is refused
        module.provenance = record_start(cfg.paths.output_dir, module.run_config, saved_provenance, resumed_at, ckpt_path)
    for logger in loggers:
        logger.log_hyperparams(run_hyperparameters(module))
    exit_code = 1  # W&B's record of how the run ended: anything but a return from fit is a failure ...
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        stopped_by = stop_event(trainer)
        # ... a run stopped by divergence ends with its status (3) ...
        exit_code = TrainingDiverged.exit_status if (stopped_by or {}).get("kind") == "divergence" else 0
    except SystemExit as stop:  # ... and a signal's save with 128 + its number (None: 0, as Python exits)
        exit_code = 0 if stop.code is None else stop.code if isinstance(stop.code, int) else 1
        raise
    except Exception as error:  # a user error with its status (2), also one raised inside another exception
        exit_code = int(getattr(user_error_behind(error), "exit_status", 1))
        raise
    finally:
        finish_loggers(loggers, exit_code)
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    if trainer.is_global_zero:  # once, not once per DDP process
        # in the run's unit: Lightning's own line above says "max_steps=<n> reached", in G's and D's optimizer steps
        log.info("Trained to generator step %d (Lightning's global step %d: both networks' optimizer steps)",
                 module.generator_steps, trainer.global_step)
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
    """The checkpoint this run continues from (``gan.job.checkpoint_to_resume``), said in the run log."""
    ckpt_path = checkpoint_to_resume(cfg)
    if ckpt_path is not None and cfg.get("ckpt_path") != ckpt_path:
        log.info("Resuming from %s", ckpt_path)
    elif ckpt_path is None and (cfg.get("ckpt_path") == "last" or slurm_batch_job_id() is not None):
        log.info("ckpt_path=last: no %s yet, starting from scratch", checkpoint_dir(cfg) / "last.ckpt")
    return ckpt_path


def continue_wandb_run(cfg: DictConfig, checkpoint: dict[str, Any]) -> None:
    """Log a resumed run into the W&B run that wrote the checkpoint (unless an id was given)."""
    run_id = wandb_run_id(checkpoint)
    wandb = OmegaConf.select(cfg, "logger.wandb")
    if run_id is None or wandb is None or wandb.get("id"):
        return
    with open_dict(cfg):
        wandb.id = run_id
    log.info("Continuing W&B run %s", run_id)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float | None:
    """One job (gan/job.py): its options checked, then ``train``. A user error (bad option, missing data, ...) is one
    line, ``error: <message>``, and exit status 2; a run stopped by divergence, one line and status 3 (see
    gan/utils/errors.py); a run stopped before ``generator_steps`` by another health check (action stop) or by
    ``trainer.max_time``, a warning line and status 0. In a multirun every job adds its row to the sweep's
    summary.csv and returns ``optimized_metric`` to the sweeper; a diverged job is recorded and the sweep goes on (the
    sweeper gets ``failed_trial_value``, or None: a failed trial); a failed one stops the sweep unless
    ``failed_trial_value`` is set (not for a refusal every trial would share)."""
    job = Job(cfg, HydraConfig.get())
    try:
        job.check_options()
        job.start()
        metrics, objects = train(cfg)
    except Exception as error:
        value = job.failed(error)
        if value is None:  # the error ends the job (and the sweep)
            raise
        return value
    return job.finished(metrics, objects)


if __name__ == "__main__":
    composition_errors_in_one_line()
    main()
