"""Evaluate a trained run, or a folder of generated images, with the same metric suite the training callback uses.

``python evaluate.py ckpt_path=RUN/checkpoints/best.ckpt metrics=[fid,is,kid,prc] num_samples=10000``
``python evaluate.py fake_path=my_samples/ data=cifar10 metrics=[fid,kid]``

Writes ``report.json`` (values + protocol + checkpoint + config), ``samples.png`` (a grid, or a scatter over
the real modes for 2D data) and ``interpolation.png`` (latent interpolation strips, image data) to the
output directory.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

import gan  # noqa: F401  (registers the config resolvers)
from gan.metrics import MetricSuite, image_folder_batches
from gan.metrics.cache import data_identity
from gan.nets.base import eval_mode
from gan.utils.checkpoint import generator_from_checkpoint, load_checkpoint, run_config
from gan.utils.instantiate import build
from gan.visualize import save_image_grid, save_samples

log = logging.getLogger("gan")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Scores ``cfg.ckpt_path``'s generator or the images in ``cfg.fake_path``; returns the report."""
    if not cfg.get("ckpt_path") and not cfg.get("fake_path"):
        raise ValueError("evaluate.py needs ckpt_path=RUN/checkpoints/<name>.ckpt or fake_path=<folder of images> (with data=<name>)")
    checkpoint = load_checkpoint(cfg.ckpt_path) if cfg.get("ckpt_path") else None
    train_cfg = run_config(checkpoint) if checkpoint is not None else None
    data_cfg = cfg.get("data") or (train_cfg.data if train_cfg is not None else None)
    if data_cfg is None:
        raise ValueError("fake_path= is scored against a dataset: add data=<name> (e.g. data=digits)")
    metrics_cfg = OmegaConf.to_container(cfg.metrics, resolve=True)
    if not metrics_cfg.get("compute") and train_cfg is not None:
        # no metrics= given: the run's own selection
        metrics_cfg["compute"] = OmegaConf.to_container(train_cfg.get("metrics", {}).get("compute", {}))
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    suite = MetricSuite.from_config(metrics_cfg, device=device, progress=True)  # fails now if Inception weights are missing

    datamodule = build(data_cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    suite.check_data(datamodule)
    identity = data_identity(OmegaConf.to_container(data_cfg, resolve=True))
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    if cfg.get("fake_path"):
        batches, count = image_folder_batches(cfg.fake_path, datamodule.sample_shape[0], suite.batch_size)
        values, protocol = suite.evaluate(batches, datamodule, identity)
        report["fake_path"] = str(Path(cfg.fake_path).resolve())
        report["fake_images"] = count
    else:
        generator = generator_from_checkpoint(checkpoint, use_ema=cfg.use_ema, device=device)
        values, protocol = suite.evaluate_generator(generator, datamodule, identity)
        counters = checkpoint.get("gan_counters", {})
        report["checkpoint"] = {"path": str(Path(cfg.ckpt_path).resolve()), "ema_weights": generator.uses_ema_weights, **counters}
        report["pictures"] = draw(generator, datamodule, out, cfg)
    report.update(values=values, protocol=protocol, data=datamodule.name,
                  config=OmegaConf.to_container(cfg, resolve=True),
                  run_config=OmegaConf.to_container(train_cfg) if train_cfg is not None else None)
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    log.info("%s", ", ".join(f"{name}={value:.5g}" for name, value in values.items()) or "no metrics selected")
    log.info("Wrote %s", path)
    return report


def draw(generator, datamodule, out: Path, cfg: DictConfig) -> dict[str, str]:
    """A sample picture, and for image data latent interpolation strips, from seeded latent codes."""
    rng = torch.Generator().manual_seed(cfg.seed)
    modes = getattr(datamodule, "modes", None)
    count = cfg.num_points if datamodule.kind == "points" else cfg.num_images
    pictures = {"samples": str(save_samples(generator.sample(count, generator=rng), out / "samples.png", modes, title=Path(cfg.ckpt_path).name))}
    if datamodule.kind == "image" and cfg.interpolation.rows > 0:
        strips = latent_interpolation(generator, cfg.interpolation.rows, cfg.interpolation.steps, rng)
        pictures["interpolation"] = str(save_image_grid(strips, out / "interpolation.png", nrow=cfg.interpolation.steps))
    return pictures


@torch.no_grad()
def latent_interpolation(generator, rows: int, steps: int, rng: torch.Generator) -> torch.Tensor:
    """``rows`` strips of ``steps`` images each, along great circles between two latent codes (slerp: a
    straight line would pass through the low-norm centre that a Gaussian prior almost never samples)."""
    start, end = generator.noise(rows, rng), generator.noise(rows, rng)
    labels = generator.random_labels(rows, rng, start.device)
    omega = torch.acos((start * end).sum(1, keepdim=True) / (start.norm(dim=1, keepdim=True) * end.norm(dim=1, keepdim=True))).clamp_min(1e-6)
    t = torch.linspace(0, 1, steps, device=start.device).view(1, steps, 1)
    omega = omega.unsqueeze(1)
    codes = (torch.sin((1 - t) * omega) * start.unsqueeze(1) + torch.sin(t * omega) * end.unsqueeze(1)) / torch.sin(omega)
    if labels is not None:
        labels = labels.repeat_interleave(steps)
    with eval_mode(generator):
        return generator(codes.reshape(rows * steps, -1), labels)


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
