"""Train a GAN: ``python train.py model=wgan_gp data=toy2d_grid`` (Hydra overrides, ``-m`` for multirun)."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Sequence

import hydra
import lightning.pytorch as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

import gan  # noqa: F401  (registers the config resolvers)
from gan.callbacks.resume import ResumeState, wandb_run_id
from gan.utils.checkpoint import load_checkpoint
from gan.utils.instantiate import build, build_module, instantiate_group
from gan.utils.logging import finish_loggers
from gan.utils.sweep import objective, parse_overrides, write_result, write_summary

log = logging.getLogger("gan")


def train(cfg: DictConfig, callbacks: Sequence[pl.Callback] = ()) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit one run (``callbacks``: extra ones, e.g. a benchmark's clock); returns the final logged metrics
    and the objects built for it."""
    pl.seed_everything(cfg.seed, workers=True)
    ckpt_path = resume_checkpoint(cfg)
    if ckpt_path is not None:
        continue_wandb_run(cfg, ckpt_path)
    datamodule = build(cfg.data)
    # Downloads happen once per node, as Lightning does it: the local-rank-0 process runs train() to the end
    # of prepare_data before Lightning starts the other ranks (they re-run this script with LOCAL_RANK set).
    if int(os.environ.get("LOCAL_RANK", 0)) == 0:
        datamodule.prepare_data()
    datamodule.setup("fit")
    module = build_module(cfg)
    datamodule.check_sample_shape(module.generator.sample_shape)
    # RNG states, data position and W&B run id: what an exact resume needs beyond Lightning's checkpoint
    callbacks = instantiate_group(cfg.get("callbacks")) + [ResumeState(), *callbacks]
    loggers = instantiate_group(cfg.get("logger"))
    trainer = build(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(module.run_config)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    finally:
        finish_loggers(loggers)
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    log.info("Run directory: %s", cfg.paths.output_dir)
    return metrics, {"cfg": cfg, "datamodule": datamodule, "module": module, "trainer": trainer}


def resume_checkpoint(cfg: DictConfig) -> str | None:
    """``ckpt_path``; ``last`` means this run directory's last.ckpt if there is one (a requeued job)."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path != "last":
        return ckpt_path
    checkpoint_dir = OmegaConf.select(cfg, "callbacks.model_checkpoint.dirpath") or f"{cfg.paths.output_dir}/checkpoints"
    last = Path(checkpoint_dir) / "last.ckpt"
    if last.is_file():
        log.info("Resuming from %s", last)
        return str(last)
    log.info("ckpt_path=last: no %s yet, starting from scratch", last)
    return None


def continue_wandb_run(cfg: DictConfig, ckpt_path: str) -> None:
    """Log a resumed run into the W&B run that wrote the checkpoint (unless an id was given)."""
    run_id = wandb_run_id(load_checkpoint(ckpt_path))
    wandb = OmegaConf.select(cfg, "logger.wandb")
    if run_id is None or wandb is None or wandb.get("id"):
        return
    with open_dict(cfg):
        wandb.id = run_id
    log.info("Continuing W&B run %s", run_id)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """One job. In a multirun a failed job returns ``failed_trial_value`` (when set) so a sweeper goes on,
    and every job adds its row to the sweep's summary.csv."""
    in_sweep = HydraConfig.get().mode == RunMode.MULTIRUN and rank_zero_only.rank == 0
    failed_value = cfg.get("failed_trial_value")
    started = time.time()
    try:
        metrics, _ = train(cfg)
    except Exception as error:
        if in_sweep:
            record_job(cfg, "failed", failed_value, {}, started, error=f"{type(error).__name__}: {error}".splitlines()[0])
        if not in_sweep or failed_value is None:
            raise
        log.exception("Job failed; the sweep goes on with failed_trial_value=%s", failed_value)
        return float(failed_value)
    value = objective(metrics, cfg.get("optimized_metric"), failed_value if in_sweep else None)
    if in_sweep:
        record_job(cfg, "completed", value, metrics, started)
    return value


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
    main()
