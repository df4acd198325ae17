"""Evaluate a trained run, several runs, or a folder of generated images, with the same metric suite the
training callback uses.

``python evaluate.py ckpt_path=RUN/checkpoints/best.ckpt metrics=[fid,is,kid,prc] num_samples=10000``
``python evaluate.py ckpt_path=logs/train/multiruns/DATE_TIME seeds=[0,1,2]``   (every job, 3 latent seeds)
``python evaluate.py fake_path=my_samples/ data=cifar10 metrics=[fid,kid]``

Writes ``report.json`` (values + protocol + checkpoint + config), ``samples.png`` (a grid, or a scatter over
the real modes for 2D data) and ``interpolation.png`` (latent interpolation strips, image data) to the
output directory. Several checkpoints (a glob or a multirun directory in ``ckpt_path``) or latent seeds
(``seeds``) give one entry per evaluation in ``runs`` and, per metric, the mean, standard deviation and
Student-t 95 % interval in ``summary`` (also printed as a table); no pictures then.

Ctrl+C: the first stops the evaluation the usual way (KeyboardInterrupt once the running torch operation
returns; no report is written), a second one ends the process at once with status 130.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import re
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

import gan  # noqa: F401  (registers the config resolvers)
from gan.metrics import MetricSuite, image_folder_batches
from gan.metrics.cache import data_identity
from gan.metrics.summary import format_table, summarize_runs
from gan.nets.base import eval_mode
from gan.utils.checkpoint import generator_from_checkpoint, load_checkpoint, run_config
from gan.utils.config import check_evaluate_options
from gan.utils.errors import CheckpointError, ConfigError, composition_errors_in_one_line, exit_on_user_error
from gan.utils.instantiate import build
from gan.visualize import save_image_grid, save_samples

log = logging.getLogger("gan")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Scores the generator of ``cfg.ckpt_path`` (one checkpoint, a glob, or a multirun directory) at each
    latent seed of ``cfg.seeds``, or the images in ``cfg.fake_path``; returns the report."""
    with second_interrupt_aborts():
        return _evaluate(cfg)


def _evaluate(cfg: DictConfig) -> dict[str, Any]:
    if not cfg.get("ckpt_path") and not cfg.get("fake_path"):
        raise ConfigError("evaluate.py needs ckpt_path=RUN/checkpoints/<name>.ckpt (or a glob, or a multirun directory) "
                          "or fake_path=<folder of images> (with data=<name>)")
    check_evaluate_options(cfg)
    checkpoint_paths = find_checkpoints(cfg.ckpt_path, cfg.get("ckpt_name") or "last.ckpt") if cfg.get("ckpt_path") else []
    checkpoint = load_checkpoint(checkpoint_paths[0]) if checkpoint_paths else None
    train_cfg = run_config(checkpoint) if checkpoint is not None else None
    data_cfg = cfg.get("data") or (train_cfg.data if train_cfg is not None else None)
    if data_cfg is None:
        raise ConfigError("fake_path= is scored against a dataset: add data=<name> (e.g. data=digits)")
    metrics_cfg = OmegaConf.to_container(cfg.metrics, resolve=True)
    if not metrics_cfg.get("compute") and train_cfg is not None:
        # no metrics= given: the run's own selection
        metrics_cfg["compute"] = OmegaConf.to_container(train_cfg.get("metrics", {}).get("compute", {}))
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    suite = MetricSuite.from_config(metrics_cfg, device=device, progress=True)  # fails now if weights are missing

    datamodule = build(data_cfg)
    if cfg.get("fake_path") and datamodule.kind != "image":  # before the folder is read
        raise ConfigError(f"fake_path={cfg.fake_path}: a folder is scored as image data, but data {datamodule.name} "
                          f"yields {datamodule.kind}; expected image data (e.g. data=digits)")
    datamodule.prepare_data()
    datamodule.setup("fit")
    suite.check_data(datamodule)
    identity = data_identity(OmegaConf.to_container(data_cfg, resolve=True))
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(seed) for seed in cfg.get("seeds") or [cfg.seed]]
    report: dict[str, Any] = {}
    if cfg.get("fake_path"):
        suite.check_generator(None)
        batches, count = image_folder_batches(cfg.fake_path, datamodule.sample_shape[0], suite.batch_size)
        suite.check_fake_count(count, f"fake_path={cfg.fake_path}")
        values, protocol = suite.evaluate(batches, datamodule, identity)
        report.update(fake_path=str(Path(cfg.fake_path).resolve()), fake_images=count, values=values)
    elif len(checkpoint_paths) == 1 and len(seeds) == 1:
        generator = generator_from_checkpoint(checkpoint, use_ema=cfg.use_ema, device=device)
        suite.check_generator(generator.num_classes)
        values, protocol = suite.evaluate_generator(generator, datamodule, identity, latent_seed=seeds[0])
        report.update(checkpoint=checkpoint_record(checkpoint_paths[0], checkpoint, generator), values=values,
                      pictures=draw(generator, datamodule, out, cfg))
    else:
        runs, protocol = [], None
        for path in checkpoint_paths:
            checkpoint = checkpoint if path == checkpoint_paths[0] else load_checkpoint(path)
            if not cfg.get("data") and data_identity(OmegaConf.to_container(run_config(checkpoint).data)) != \
                    data_identity(OmegaConf.to_container(train_cfg.data)):
                raise ConfigError(f"{path} was trained on other data than {checkpoint_paths[0]}; pass data=<name> "
                                  "to score every checkpoint against one data set")
            generator = generator_from_checkpoint(checkpoint, use_ema=cfg.use_ema, device=device)
            suite.check_generator(generator.num_classes)
            for seed in seeds:
                values, run_protocol = suite.evaluate_generator(generator, datamodule, identity, latent_seed=seed)
                protocol = protocol or run_protocol
                runs.append({"checkpoint": checkpoint_record(path, checkpoint, generator), "latent_seed": seed, "values": values})
                log.info("%s, latent seed %d: %s", path, seed, format_values(values))
        summary = summarize_runs([run["values"] for run in runs])
        report.update(runs=runs, summary=summary)
        log.info("%d evaluations (%d checkpoints x %d latent seeds):\n%s", len(runs), len(checkpoint_paths), len(seeds),
                 format_table(summary))
    report.update(protocol=protocol, data=datamodule.name, config=OmegaConf.to_container(cfg, resolve=True),
                  run_config=OmegaConf.to_container(train_cfg) if train_cfg is not None else None)
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    if "values" in report:
        log.info("%s", format_values(report["values"]))
    log.info("Wrote %s", path)
    return report


def format_values(values: dict[str, float]) -> str:
    return ", ".join(f"{name}={value:.5g}" for name, value in values.items()) or "no metrics selected"


def checkpoint_record(path: str | Path, checkpoint: dict[str, Any], generator) -> dict[str, Any]:
    return {"path": str(Path(path).resolve()), "ema_weights": generator.uses_ema_weights, **checkpoint.get("gan_counters", {})}


def find_checkpoints(pattern: str, name: str = "last.ckpt") -> list[str]:
    """The checkpoints ``ckpt_path`` names: one file, a glob (``runs/*/checkpoints/last.ckpt``), or a directory
    (a multirun's: every ``<job>/checkpoints/<name>`` below it; a run's ``checkpoints`` folder: its ``<name>``),
    in natural order (job 2 before job 10)."""
    def natural(path: str) -> list:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]

    pattern = str(pattern)
    if glob.has_magic(pattern):
        found = glob.glob(pattern, recursive=True)
    elif Path(pattern).is_dir():
        found = [str(path) for path in Path(pattern).glob(f"**/checkpoints/{name}")]
        if not found and (Path(pattern) / name).is_file():  # a run's checkpoints folder itself
            found = [str(Path(pattern) / name)]
    else:
        return [pattern]  # one file; load_checkpoint says when it is missing
    if not found:
        looked_for = "" if glob.has_magic(pattern) else f" (looked for <job>/checkpoints/{name} below it)"
        raise CheckpointError(f"ckpt_path={pattern} matches no checkpoint{looked_for}")
    return sorted(found, key=natural)


@contextmanager
def second_interrupt_aborts() -> Iterator[None]:
    """Within the block a second Ctrl+C ends the process at once (status 130).

    A first one raises KeyboardInterrupt as usual, but Python delivers it only once the main thread runs
    Python code again: during a long native call (a big matrix function, a large batch through a network)
    it waits, and so would every further Ctrl+C. Here a watcher thread counts the interrupts through the
    signal wakeup fd, which the C-level handler writes at once; torch releases the GIL inside its
    operations, so the watcher runs and can exit on the second."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # someone else handles SIGINT (or this is not the main thread): leave it to them
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    done = threading.Event()

    def watch() -> None:
        interrupts = 0
        while not done.is_set():
            interrupts += os.read(read_fd, 64).count(signal.SIGINT)
            if interrupts == 1 and not done.is_set():
                sys.stderr.write("\nInterrupted: stopping the evaluation (Ctrl+C again to abort at once)\n")
            elif interrupts >= 2 and not done.is_set():
                sys.stderr.write("\nAborted\n")
                sys.stderr.flush()
                os._exit(128 + signal.SIGINT)

    watcher = threading.Thread(target=watch, name="second-ctrl-c", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        done.set()
        os.write(write_fd, b"\0")  # wakes the watcher, which then returns
        watcher.join(timeout=1)
        os.close(read_fd)
        os.close(write_fd)


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
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    """A user error (missing, truncated or foreign checkpoint, missing data, bad option) is one line,
    ``error: <message>``, and exit status 2; anything else keeps its traceback."""
    evaluate(cfg)


if __name__ == "__main__":
    composition_errors_in_one_line()
    main()
