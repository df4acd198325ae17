"""Train a GAN: ``python train.py model=wgan_gp data=toy2d_grid`` (Hydra overrides, ``-m`` for multirun)."""
from __future__ import annotations

import logging
from typing import Any

import hydra
import lightning.pytorch as pl
from omegaconf import DictConfig, OmegaConf

import gan  # noqa: F401  (registers the config resolvers)
from gan.utils.instantiate import build, build_module, instantiate_group
from gan.utils.logging import finish_loggers

log = logging.getLogger("gan")


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit one run; returns the final logged metrics and the objects built for it."""
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = build(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = build_module(cfg)
    datamodule.check_sample_shape(module.generator.sample_shape)
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    trainer = build(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(module.run_config)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    finally:
        finish_loggers(loggers)
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    log.info("Run directory: %s", cfg.paths.output_dir)
    return metrics, {"cfg": cfg, "datamodule": datamodule, "module": module, "trainer": trainer}


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics, _ = train(cfg)
    return metrics.get(cfg.get("optimized_metric")) if cfg.get("optimized_metric") else None


if __name__ == "__main__":
    main()
