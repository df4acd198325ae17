"""Training throughput: generator steps and images per second for a config, precision and compile setting.

    python benchmarks/throughput.py model=wgan_gp trainer=gpu --precision 32-true bf16-mixed 16-mixed \
        --compile false true --steps 60 --warmup 20 [--out benchmarks/results/throughput.csv]

Each combination is a real ``train.train`` run of the composed config (any Hydra override is accepted)
with no logger, sample grids or metrics (``measure(shipped_callbacks=True)``: the shipped ones, with a CSV
logger). The clock runs from the end of generator step ``--warmup`` (CUDA synchronised; so compilation and
cuDNN autotuning are excluded) to the end of the last generator step. One generator step is ``n_critic``
discriminator updates on fresh real batches plus one generator update; images/s counts the real images
consumed (``data.batch_size`` x the real batches of an iteration per generator step, per process:
``n_critic``, plus one for a loss whose generator step reads reals, r3gan's). ``--bare`` adds the bare PyTorch
loop of ``benchmarks/overhead.py`` on the same networks, optimizers and data (32-true without compile only;
other rows get none), timed over the same generator steps.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.utils.config import PROJECT_ROOT  # noqa: E402


class StepClock(pl.Callback):
    """Wall time from the end of generator step ``warmup`` to the end of generator step ``total`` (or of training,
    if it stops before), as ``benchmarks/overhead.py``'s window and the bare loop time it: the end of training adds
    the last batch's logging and Lightning's teardown (~8 ms on the CPU), which the bare loop's clock leaves out
    (an audit: a small bias against the framework in ``ratio_to_bare``)."""

    def __init__(self, warmup: int, total: int | None = None):
        self.warmup, self.total, self.started, self.seconds, self.steps = warmup, total, None, None, 0

    @staticmethod
    def _now() -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_gan_iteration_end(self, trainer, pl_module) -> None:
        # after every GAN iteration (called by the module), however many a training batch holds; the clock reads
        # (and synchronises CUDA) only at the window's two ends
        if self.started is None and pl_module.generator_steps >= self.warmup:
            self.started, self.start_step = self._now(), pl_module.generator_steps
        elif self.seconds is None and self.total is not None and pl_module.generator_steps >= self.total:
            self.stop(pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.started is not None and self.seconds is None:
            self.stop(pl_module)

    def stop(self, pl_module) -> None:
        self.seconds = self._now() - self.started
        self.steps = pl_module.generator_steps - self.start_step


def bare_loop_steps_per_s(cfg, steps: int, warmup: int) -> float | None:
    """Generator steps per second of ``benchmarks/overhead.py``'s bare loop on ``cfg`` (None: a loss or trick
    the bare loop does not have)."""
    from benchmarks.overhead import Window, bare_loop, config_device, without_lightning_env

    window = Window(warmup, steps - warmup, config_device(cfg))
    try:
        with without_lightning_env():
            bare_loop(cfg, window)
    except NotImplementedError as error:
        print(f"no bare loop: {error}", flush=True)
        return None
    return round(1e3 / window.result()["ms_per_step"], 2)


def measure(overrides: list[str], precision: str, compile_networks: bool, steps: int, warmup: int, out_dir: Path,
            bare: bool = False, bare_first: bool = False, shipped_callbacks: bool = False) -> dict:
    """One timed ``train.train`` run; with ``bare``, the bare loop of ``benchmarks/overhead.py`` on the same
    config too, after it (``bare_first``: before it, so repeated pairs can alternate which runs on a warmer
    machine). The framework runs its core (no logger, callbacks or metrics) unless ``shipped_callbacks``: then the
    shipped callbacks and metrics with the CSV logger, as ``benchmarks/overhead.py``'s defaults variant."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from gan.callbacks.progress import GANProgressBar
    from train import train

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        # the shipped callbacks include the progress bar, which Lightning refuses beside enable_progress_bar=false;
        # its redraws spaced as on a terminal (0.1 s; 10 s into a file or pipe, where a benchmark's output often goes)
        shipped = ["logger=csv", f"callbacks.progress_bar.min_seconds_between_refreshes={GANProgressBar.TERMINAL_SPACING}"]
        framework = shipped if shipped_callbacks else ["logger=none", "callbacks=none", "metrics=none",
                                                              "+trainer.enable_progress_bar=false"]
        cfg = compose("train", overrides=[
            *overrides, *framework, f"generator_steps={steps}", f"trainer.precision={precision}",
            f"compile={str(compile_networks).lower()}", "+trainer.enable_model_summary=false", f"paths.output_dir={out_dir}",
        ])
    with_bare = bare and precision == "32-true" and not compile_networks
    bare_steps_per_s = bare_loop_steps_per_s(cfg, steps, warmup) if with_bare and bare_first else None
    clock = StepClock(warmup, total=steps)
    metrics, objects = train(cfg, callbacks=[clock])
    module = objects["module"]
    # a fast run that went to NaN is no result: every parameter and every logged value must be finite
    finite = all(bool(torch.isfinite(p).all()) for p in module.parameters()) and all(
        math.isfinite(float(value)) for value in metrics.values())
    steps_per_s = clock.steps / clock.seconds
    if with_bare and not bare_first:
        bare_steps_per_s = bare_loop_steps_per_s(cfg, steps, warmup)
    return {
        "model": cfg.model.generator._target_.rsplit(".", 1)[-1] + "/" + cfg.model.discriminator._target_.rsplit(".", 1)[-1],
        "overrides": " ".join(overrides), "precision": precision, "compile": compile_networks,
        "framework": "shipped callbacks and metrics, csv logger" if shipped_callbacks else "core",
        "batch_size": cfg.data.batch_size, "n_critic": module.n_critic,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "generator_steps_per_s": round(steps_per_s, 2),
        **({"bare_loop_generator_steps_per_s": bare_steps_per_s} if bare else {}),
        # the real images an iteration reads: n_critic batches, one more for the generator step of a loss that
        # compares reals with fakes there (r3gan's relativistic loss; counted as n_critic alone until an audit)
        "images_per_s": round(steps_per_s * module.real_batches_per_iteration * cfg.data.batch_size, 1),
        "timed_generator_steps": clock.steps,
        "finite": finite,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=wgan_gp trainer=gpu")
    parser.add_argument("--precision", nargs="+", default=["32-true"])
    parser.add_argument("--compile", nargs="+", default=["false"], choices=["false", "true"])
    parser.add_argument("--steps", type=int, default=60, help="generator steps per run")
    parser.add_argument("--warmup", type=int, default=20, help="generator steps before the clock starts")
    parser.add_argument("--bare", action="store_true", help="also time the bare PyTorch loop (benchmarks/overhead.py)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (0: torch's default, one per core); on a CPU shared with other jobs "
                             "use 1: with the default, tiny networks ran 90x slower on a loaded 2-core machine")
    parser.add_argument("--out", type=Path, default=None, help="CSV to write (default: print only)")
    args = parser.parse_args()
    if not 0 < args.warmup < args.steps:
        parser.error(f"--warmup must be in (0, --steps={args.steps}), got {args.warmup}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precision:
            for compile_flag in args.compile:
                row = measure(args.overrides, precision, compile_flag == "true", args.steps, args.warmup, Path(tmp) / "run",
                              args.bare)
                print(row, flush=True)
                rows.append(row)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
