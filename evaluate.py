"""Evaluate a trained run: ``python evaluate.py ckpt_path=RUN/checkpoints/last.ckpt``.

Loads the checkpoint's generator (EMA weights when present) and writes a sample picture to the output
directory with the same code the sample-grid callback uses.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

import gan  # noqa: F401  (registers the config resolvers)
from gan.utils.checkpoint import load_checkpoint, load_generator, run_config
from gan.visualize import save_samples

log = logging.getLogger("gan")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    checkpoint = load_checkpoint(cfg.ckpt_path)
    train_cfg = run_config(checkpoint)
    generator = load_generator(cfg.ckpt_path, use_ema=cfg.use_ema)
    samples = generator.sample(cfg.num_samples, generator=torch.Generator().manual_seed(cfg.seed))
    modes = getattr(instantiate(train_cfg.data), "modes", None) if samples.dim() == 2 else None
    out = Path(cfg.paths.output_dir)
    path = save_samples(samples, out / "samples.png", modes, title=Path(cfg.ckpt_path).name)
    log.info("Wrote %s (%d samples, %s weights)", path, cfg.num_samples, "EMA" if generator.uses_ema_weights else "raw")
    return {"samples_path": str(path), "num_samples": int(cfg.num_samples)}


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
