"""The framework's own cost per generator step: a bare PyTorch loop against ``train.train`` on one config,
and Lightning's loop alone around the bare loop's iteration.

    python benchmarks/overhead.py --model wgan_gp dcgan --mode tiny --repeats 5
    python benchmarks/overhead.py --model dcgan --mode realistic --steps 40 --warmup 10 --repeats 3
    python benchmarks/overhead.py --model wgan_gp dcgan --mode gpu --repeats 5      # needs a CUDA device
    python benchmarks/overhead.py --model wgan_gp --mode tiny trainer.log_every_n_steps=50   # extra overrides
    python benchmarks/overhead.py --model wgan_gp dcgan --repeats 1 --count-calls   # Python calls per step (any host)
    python benchmarks/overhead.py --model dcgan --variants defaults --repeats 3 --hook-costs   # time per callback
    python benchmarks/overhead.py --model wgan_gp dcgan --iterations-per-batch 1    # one GAN iteration per batch
    python benchmarks/overhead.py --model dcgan wgan_gp --iteration-ab --repeats 21   # the module's own Python per iteration
    python benchmarks/overhead.py --model dcgan wgan_gp --variants defaults --repeats 1 --hook-ops   # kernels per callback

Four variants of the same composed config, run in alternation (bare, lightning, core, defaults, bare, ...)
so a machine whose load drifts (shared CPUs) affects all of them alike:

- ``bare``: the loop below, written plainly: the SAME generator and discriminator (instantiated from the
  config), the same optimizers (the config's optimizer pair), the same data tensors and batch size, the same
  loss and penalty math, the same number of forward/backward passes and optimizer steps per iteration.
- ``lightning``: the bare loop's iteration as the ``training_step`` of the smallest LightningModule, under
  the core's Trainer and the framework's data loader (one batch per iteration): Lightning's per-batch loop
  and the loader around the bare work, and nothing of ``gan/``'s module or callbacks. It is the floor of any
  framework built on Lightning's loop with one batch per GAN iteration; core / lightning is the framework's
  own share. ``--iterations-per-batch`` (default ``auto``, the shipped setting) is the framework's
  ``model.iterations_per_batch``; the floor runs as many bare iterations per batch as ``auto`` gives the core's
  config (or K), so Lightning's per-batch cost is paid once for that many iterations in both. Each run's
  number is in its row and the table.
- ``core``: ``train.train(cfg)`` with ``callbacks=none logger=none metrics=none`` and Lightning's own
  progress bar, model summary and checkpointing off: Lightning's loop plus ``gan/module.py``.
- ``defaults``: ``train.train(cfg)`` with the shipped callbacks (checkpoints, sample grids, progress bar,
  gradient norms, health checks, the data's default metrics) and ``logger=csv`` (W&B is network-bound, so
  it is left out; the CSV logger writes the same rows to disk).

Modes: ``tiny`` (``data=toy2d_grid`` and width-1 networks on the CPU: the networks cost almost nothing, so
the difference is the framework's own cost, which a small model on a GPU pays at every step), ``realistic``
(the default config of the model: DCGAN-shaped networks on the 28 px digits, CPU), ``gpu`` (the realistic
config on CUDA; ``--device cuda`` runs any mode there).

The clock: time per generator step from the end of generator step ``--warmup`` to the end of generator step
``--warmup + --steps`` (start-up, first-call allocations and the first iterations excluded). Inside
``train.train`` a small callback takes the time at the end of each GAN iteration (the module's
``on_gan_iteration_end``; with ``--iterations-per-batch 1`` at the end of each training batch, which is then one
iteration, and the time is split into inside and between batches); the bare loop takes it at the same point of
its iteration. Two clocks:
wall time, and this process's CPU time, which on a shared machine leaves out the time spent waiting for a
core (with one torch thread it is close to the work done; on CUDA it leaves out the device's time). On CUDA
the window's two ends are synchronised (``torch.cuda.synchronize``) and nothing in between is, so the host
may run ahead of the device as in a real run. Per-step times are the window's mean: periodic work that falls
in it (logging steps, gradient norms, grids, metrics, checks, checkpoints) is amortised. The default tiny
window, 500 generator steps after 510, is one full period of every shipped cadence after its first occurrence:
10 logging and gradient-norm steps (every 50), 5 mode-collapse checks of the health callback (every 100 from
step 500), 2 sample grids and metric evaluations with their best-checkpoint saves (every 250) and one
periodic checkpoint (every 500). After the first occurrence, because a first call carries costs a run pays
once (Lightning creates its metric objects at the first logging step, ~2.7 ms with a read of package
metadata; matplotlib loads a font at the first title; lazy imports). Until 2026-12-05 the window was 250
steps after 50: it held the first logging step and the first grid, metric and checkpoint, and none of the
mode-collapse checks. The realistic default (40 after 10) holds none of the periodic events. ``--threads`` is 1 by default: tiny networks gain nothing from more, and on a machine shared with
other jobs torch's default (one thread per core) made these runs 6-14x slower, bare loop included.

The bare loop runs without ``PYTORCH_NVML_BASED_CUDA_CHECK``, which importing Lightning sets: with it, every
``torch.cuda.is_available()`` on a machine without a GPU tries to load NVML, and Adam calls it at every step
(~0.1-0.2 ms), a cost that a script without Lightning does not pay.

``--profile DIR`` runs the timed window under cProfile and prints the top functions (use it to find costs;
the profiler's own cost inflates them).

Output: a markdown table (medians over repeats, min-max in brackets, ratios taken per alternation round
then their median) and JSON lines appended to ``benchmarks/results/overhead.jsonl`` (one row per run and one
summary row per model, with the load average and the code: the git commit, with a hash of uncommitted changes).
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.batching import AUTO  # noqa: E402
from gan.callbacks.progress import GANProgressBar  # noqa: E402
from gan.utils.config import PROJECT_ROOT  # noqa: E402
from gan.utils.provenance import code_label  # noqa: E402

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "overhead.jsonl"
VARIANTS = ("bare", "lightning", "core", "defaults")
# (variant, base) pairs whose per-round ratio the summary reports
RATIOS = (("lightning", "bare"), ("core", "bare"), ("defaults", "bare"), ("core", "lightning"))
MODES = {
    # width 1: hidden layers of 8 units (width x max_width_multiplier); the 2D points cost nothing to load
    # presets=none: the variant's own setting (the toys' per-data presets add an EMA the bare loop does not do)
    "tiny": ["data=toy2d_grid", "presets=none", "model.generator.width=1", "model.discriminator.width=1",
             "trainer.accelerator=cpu"],
    # the variants' paper settings on the digits as well: dcgan's digits preset adds an EMA
    "realistic": ["trainer.accelerator=cpu", "presets=none"],
    "gpu": ["trainer.accelerator=gpu", "presets=none"],
}
# Switch off everything optional: callbacks, logger, metrics, and what Lightning adds by itself when the
# callback list is empty (its own progress bar, model summary and checkpoint callback).
CORE = ["callbacks=none", "logger=none", "metrics=none", "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false", "+trainer.enable_checkpointing=false"]
# the progress bar's redraw spacing pinned to the terminal's (0.1 s): by default it is 10 s when the output goes to a
# file or a pipe (since 2026-12-06), which a benchmark's output often does, and the variant would then time fewer
# redraws than a user at a terminal pays
DEFAULTS = ["logger=csv", f"callbacks.progress_bar.min_seconds_between_refreshes={GANProgressBar.TERMINAL_SPACING}"]
# the losses the bare loop implements, by the config's loss target (anything else fails instead of
# comparing different work)
BARE_LOSSES = ("gan.losses.WassersteinLoss", "gan.losses.NonSaturatingLoss")
NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"
# wall time; and this process's CPU time, which on a shared machine leaves out the time spent waiting for a core
# (with one torch thread it is the work done; on CUDA it leaves out the device's time)
CLOCKS = {"ms_per_step": "wall", "cpu_ms_per_step": "CPU"}


def now(device: torch.device, synchronize: bool = True) -> float:
    if synchronize and device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class Window:
    """Timestamps at the end of generator steps ``warmup`` .. ``warmup + steps`` (synchronised at both ends),
    and, for the framework's runs, at the start of each timed batch (``batch_started``), which splits an
    iteration into the time inside Lightning's batch (``training_step`` and its wrappers) and the time between
    batches (Lightning's loop: fetching, moving, progress). On CUDA the split is of the host's time only."""

    def __init__(self, warmup: int, steps: int, device: torch.device, profiler: cProfile.Profile | None = None):
        self.warmup, self.steps, self.device, self.profiler = warmup, steps, device, profiler
        self.stamps: list[float] = []
        self.starts: list[float] = []  # the start of each timed batch (framework runs)
        self.cpu: list[float] = []  # this process's CPU time at both ends

    def batch_started(self, generator_steps: int) -> None:
        """Before the batch that ends at generator step ``generator_steps + 1``."""
        if self.warmup <= generator_steps < self.warmup + self.steps:
            self.starts.append(time.perf_counter())

    def tick(self, generator_steps: int) -> None:
        if self.warmup <= generator_steps <= self.warmup + self.steps:
            edge = generator_steps in (self.warmup, self.warmup + self.steps)
            self.stamps.append(now(self.device, synchronize=edge))
            if edge:
                self.cpu.append(time.process_time())
            if self.profiler is not None and edge:  # profile the timed window only
                self.profiler.enable() if generator_steps == self.warmup else self.profiler.disable()

    def result(self) -> dict:
        if len(self.stamps) != self.steps + 1:
            raise RuntimeError(f"the clock saw {len(self.stamps) - 1} of {self.steps} timed generator steps")
        durations = [b - a for a, b in zip(self.stamps, self.stamps[1:])]
        result = {"ms_per_step": 1e3 * (self.stamps[-1] - self.stamps[0]) / self.steps,
                  "cpu_ms_per_step": 1e3 * (self.cpu[-1] - self.cpu[0]) / self.steps,
                  "median_iteration_ms": 1e3 * statistics.median(durations)}
        if len(self.starts) == self.steps:  # batch i runs from starts[i] to stamps[i + 1]
            result["median_inside_batch_ms"] = 1e3 * statistics.median(
                end - start for start, end in zip(self.starts, self.stamps[1:]))
            result["median_between_batches_ms"] = 1e3 * statistics.median(
                start - end for end, start in zip(self.stamps, self.starts))
        return result


class Clock(pl.Callback):
    """The window's clock inside ``train.train``: one tick per training batch (one batch = one iteration =
    ``n_generator`` generator steps; 1 in every config here)."""

    def __init__(self, window: Window):
        self.window = window

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.window.batch_started(pl_module.generator_steps)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.window.tick(pl_module.generator_steps)


class IterationClock(pl.Callback):
    """The clock for ``model.iterations_per_batch`` > 1: one tick per GAN iteration (the module's
    ``on_gan_iteration_end``), inside Lightning's batch; no split into inside and between batches."""

    def __init__(self, window: Window):
        self.window = window

    def on_gan_iteration_end(self, trainer, pl_module) -> None:
        self.window.tick(pl_module.generator_steps)


#: the callback hooks a training run calls, timed per callback by --hook-costs (on_gan_iteration_end: the
#: module's per-iteration hook; state_dict and on_save_checkpoint: what each callback adds to a checkpoint)
TIMED_HOOKS = ("on_train_batch_start", "on_train_batch_end", "on_before_optimizer_step", "on_gan_iteration_end",
               "on_before_backward", "on_after_backward", "state_dict", "on_save_checkpoint")


class HookTimer(pl.Callback):
    """``--hook-costs``: the wall time spent in every other callback's hooks while ``window`` is open, per
    callback class. The hooks are wrapped on the instances when the fit is set up (Lightning and the module look
    them up on the instance at every call), so periodic work (a sample grid, a metric evaluation, a checkpoint
    written by a callback's batch-end hook) counts for the callback that does it. What is not a callback hook
    (the logger's writes, Lightning's own loop) is not attributed; the wrappers add ~1 us a call.

    ``count_ops`` (``--hook-ops``) also counts the operators each callback's hooks run (:class:`OpCounter`):
    on a GPU, about the kernels a callback launches per generator step. The counter's Python per operator then
    inflates the hooks' times."""

    def __init__(self, window: Window, count_ops: bool = False):
        self.window = window
        self.seconds: dict[str, float] = {}
        self.ops: dict[str, collections.Counter[str]] | None = {} if count_ops else None

    def _window_open(self) -> bool:
        return 0 < len(self.window.stamps) <= self.window.steps

    def setup(self, trainer, pl_module, stage: str) -> None:
        for callback in trainer.callbacks:
            if isinstance(callback, (HookTimer, Clock, IterationClock)):
                continue
            name = type(callback).__name__
            for hook in TIMED_HOOKS:
                inherited = getattr(pl.Callback, hook, None)
                if getattr(type(callback), hook, inherited) is not inherited:  # the callback implements it
                    setattr(callback, hook, self._timed(getattr(callback, hook), name))

    def _timed(self, hook, name: str):
        def timed(*args, **kwargs):
            if not self._window_open():
                return hook(*args, **kwargs)
            started = time.perf_counter()
            counter = OpCounter() if self.ops is not None else contextlib.nullcontext()
            try:
                with counter:
                    return hook(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
                if self.ops is not None:
                    self.ops.setdefault(name, collections.Counter()).update(counter.ops)
        return timed

    def ms_per_step(self) -> dict[str, float]:
        return {name: round(1e3 * seconds / self.window.steps, 4) for name, seconds in sorted(self.seconds.items())}

    def ops_per_step(self) -> dict[str, dict[str, float]]:
        """Per callback, the operators its hooks ran per generator step in the window, by name."""
        return {name: {op: n / self.window.steps for op, n in sorted(ops.items())} for name, ops in sorted(self.ops.items())}


# --------------------------------------------------------------------------------------------- configs
def compose(model: str, mode: str, variant: str, generator_steps: int, out_dir: Path, overrides: list[str],
            iterations_per_batch: int | str = AUTO):
    """The variant's config; ``iterations_per_batch`` is the framework's ``model.iterations_per_batch`` (the bare
    loop has no batches; the Lightning floor takes it as an argument)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    framework = variant in ("core", "defaults")
    several = [f"model.iterations_per_batch={iterations_per_batch}"] if framework else []
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose("train", overrides=[
            f"model={model}", *MODES[mode], *(DEFAULTS if variant == "defaults" else CORE),
            f"generator_steps={generator_steps}", f"paths.output_dir={out_dir}", *several, *overrides,
        ])
    GlobalHydra.instance().clear()
    return cfg


# ------------------------------------------------------------------------------------------- bare loop
def config_device(cfg) -> torch.device:
    """The device Lightning trains on for ``trainer.accelerator`` (one device)."""
    accelerator = str(cfg.trainer.accelerator)
    cuda = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if cuda else "cpu")


def bare_gradient_penalty(cfg) -> tuple[float, float] | None:
    """The gradient penalty's (weight, center) (None: no penalty), after checking the config asks for nothing else the
    bare loop leaves out (it would then time less work than the framework does)."""
    model = cfg.model
    if cfg.loss._target_ not in BARE_LOSSES:
        raise NotImplementedError(f"the bare loop implements the losses {BARE_LOSSES}, not {cfg.loss._target_}")
    penalties = {name: p for name, p in (model.get("penalties") or {}).items() if p is not None}
    extras = {
        "a penalty other than the gradient penalty": set(penalties) - {"gradient_penalty"},
        "a lazy gradient penalty": penalties.get("gradient_penalty", {}).get("interval", 1) != 1,
        "n_generator > 1": model.get("n_generator", 1) != 1,
        "weight clipping": model.get("weight_clip"), "EMA": model.get("ema_decay") is not None,
        "augmentation": model.get("augment") is not None,
        "label tricks": (model.get("real_label", 1.0) != 1.0 or model.get("real_label_range")
                         or model.get("label_flip_prob", 0.0)),
        "instance noise": model.get("instance_noise_std", 0.0),
        "feature matching": model.get("feature_matching_weight", 0.0),
        "a conditional model": model.generator.get("num_classes") is not None,
    }
    unsupported = [name for name, present in extras.items() if present]
    if unsupported:
        raise NotImplementedError(f"the bare loop has no {', '.join(unsupported)}")
    gp = penalties.get("gradient_penalty")
    return None if gp is None else (float(gp.weight), float(gp.get("center", 1.0)))


class BareIteration:
    """The twin of ``GANModule.training_step``, written plainly: the networks, the optimizers and one iteration.

    Per iteration, as ``GANModule.training_step`` does, on ``n_critic`` real batches (the framework's loader
    yields them as one batch): for each, a D step (fakes from G under no_grad, D on reals and fakes (in one pass
    when D treats samples independently, as the module does), the loss, the gradient penalty at per-sample
    interpolates with ``create_graph=True`` and its own D pass, ONE backward of loss + penalty, optimizer step);
    then a G step with D's parameters frozen (backward skips D's weight gradients, as the module's ``frozen``
    block and Gulrajani et al.'s released code do). The generator sees the last D step's reals' batch size. Not
    done here: the logged extras (D's mean scores, the dict of terms), logging, callbacks, Lightning's wrappers:
    that is the framework's cost being measured.
    """

    def __init__(self, cfg):
        from hydra.utils import instantiate

        self.penalty = bare_gradient_penalty(cfg)
        self.wasserstein = cfg.loss._target_.endswith("WassersteinLoss")
        self.device = config_device(cfg)
        self.n_critic = int(cfg.model.n_critic)
        self.generator = instantiate(cfg.model.generator).to(self.device)
        self.discriminator = instantiate(cfg.model.discriminator).to(self.device)
        self.optimizers = {"generator": instantiate(cfg.optimizer.generator)(params=self.generator.parameters()),
                           "discriminator": instantiate(cfg.optimizer.discriminator)(params=self.discriminator.parameters())}
        self.discriminator_parameters = list(self.discriminator.parameters())
        self.joint = self.discriminator.samples_independent

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        if self.wasserstein:
            return fake_logits.mean() - real_logits.mean()
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        return -fake_logits.mean() if self.wasserstein else F.softplus(-fake_logits).mean()

    def __call__(self, reals: Sequence[Tensor]) -> None:
        G, D, device, gp = self.generator, self.discriminator, self.device, self.penalty
        opt_g, opt_d = self.optimizers["generator"], self.optimizers["discriminator"]
        for real in reals:
            # noise drawn where the networks are, as a plain script does, and as the framework does too
            # (Generator.noise draws on the networks' device)
            with torch.no_grad():
                fake = G(torch.randn(real.size(0), G.latent_dim, device=device))
            if self.joint:  # one D pass over reals and fakes, as the module's discriminate_real_and_fake
                logits = D(torch.cat([real, fake]))
                loss = self.d_loss(logits[:real.size(0)], logits[real.size(0):])
            else:  # two D passes (batch norm, minibatch layers, spectral norm)
                loss = self.d_loss(D(real), D(fake))
            if gp is not None:  # Gulrajani et al.: its own D pass at per-sample interpolates, double backward
                alpha = torch.rand((real.size(0),) + (1,) * (real.dim() - 1), device=device)
                points = (alpha * real + (1.0 - alpha) * fake).requires_grad_(True)
                (grads,) = torch.autograd.grad(D(points).sum(), points, create_graph=True)
                loss = loss + gp[0] * (grads.flatten(1).norm(2, dim=1) - gp[1]).pow(2).mean()
            opt_d.zero_grad(set_to_none=True)
            loss.backward()  # ONE backward of loss + penalty
            opt_d.step()
        # the G step: fakes the size of the last D step's reals, D frozen so backward skips its weight gradients
        fake = G(torch.randn(reals[-1].size(0), G.latent_dim, device=device))
        for p in self.discriminator_parameters:
            p.requires_grad_(False)
        loss = self.g_loss(D(fake))
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        for p in self.discriminator_parameters:
            p.requires_grad_(True)
        opt_g.step()


def bare_loop(cfg, window: Window) -> dict:
    """The twin of ``train.train(cfg)``'s training loop, with nothing around it: :class:`BareIteration` on the
    config's data, held where the networks are and indexed directly (one draw of ``n_critic`` x ``batch_size``
    samples per iteration, split into ``n_critic`` batches). Returns the networks and optimizers."""
    from hydra.utils import instantiate

    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    iteration = BareIteration(cfg)
    device, n_critic = iteration.device, iteration.n_critic
    # The same samples as the framework's loader (its TensorDataset's tensor), held where the networks are,
    # as a plain script would; shuffled once per pass.
    if not isinstance(datamodule.train_set, TensorDataset):
        kind = type(datamodule.train_set).__name__
        raise NotImplementedError(f"the bare loop reads in-memory data (a TensorDataset), not {kind}")
    data = datamodule.train_set.tensors[0].to(device)
    per_iteration = n_critic * int(cfg.data.batch_size)
    order, position = torch.randperm(len(data), device=device), 0

    generator_steps = 0
    window.tick(generator_steps)
    while generator_steps < window.warmup + window.steps:
        if position + per_iteration > len(data):  # drop_last, then the next pass
            order, position = torch.randperm(len(data), device=device), 0
        iteration(data[order[position:position + per_iteration]].chunk(n_critic))
        position += per_iteration
        generator_steps += 1
        window.tick(generator_steps)
    return {"generator": iteration.generator, "discriminator": iteration.discriminator,
            "optimizers": iteration.optimizers}


class BareIterationModule(pl.LightningModule):
    """:class:`BareIteration` as the ``training_step`` of the smallest LightningModule that runs it (manual
    optimization, the raw optimizers, no logging): what Lightning's batch loop and the framework's data loader
    cost around the bare iteration, with nothing of ``gan/module.py``. It stops itself after ``generator_steps``
    iterations (its raw optimizer steps do not advance Lightning's step counter).

    ``iterations_per_batch`` > 1 runs that many iterations per Lightning batch (the loader's batch holds all
    their reals), as ``model.iterations_per_batch`` does in the framework; the module then ticks ``window``
    after each iteration itself."""

    def __init__(self, iteration: BareIteration, generator_steps: int, iterations_per_batch: int = 1,
                 window: Window | None = None):
        super().__init__()
        self.automatic_optimization = False
        self.iteration = iteration
        self.generator, self.discriminator = iteration.generator, iteration.discriminator
        self.iterations_per_batch, self.window = iterations_per_batch, window
        # the name the data module reads: the real batches one loader batch holds
        self.real_batches_per_training_step = iteration.n_critic * iterations_per_batch
        self.generator_steps, self.total_generator_steps = 0, generator_steps

    def configure_optimizers(self):
        return [self.iteration.optimizers["generator"], self.iteration.optimizers["discriminator"]]

    def training_step(self, batch, batch_idx: int) -> None:
        reals = batch[0].chunk(self.real_batches_per_training_step)
        n_critic = self.iteration.n_critic
        for i in range(self.iterations_per_batch):
            self.iteration(reals[i * n_critic:(i + 1) * n_critic])
            self.generator_steps += 1
            if self.window is not None:
                self.window.tick(self.generator_steps)
            if self.generator_steps >= self.total_generator_steps:
                self.trainer.should_stop = True
                return


def lightning_loop(cfg, window: Window, iterations_per_batch: int | str = 1) -> BareIterationModule:
    """:class:`BareIterationModule` under the core variant's Trainer (built from the same config, no callbacks
    but the clock, no logger) and the config's data module: the floor any LightningModule with one batch per
    GAN iteration starts from (or with ``iterations_per_batch`` iterations per batch; ``auto``: as many as the
    framework's ``auto`` takes for the core's config, whose only batch-end cadence is the logging one)."""
    from types import SimpleNamespace

    from hydra.utils import instantiate

    from gan.batching import resolve_iterations_per_batch
    from gan.utils.instantiate import build_trainer

    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    if iterations_per_batch == AUTO:
        n_critic = int(cfg.model.n_critic)
        core_trainer = SimpleNamespace(log_every_n_steps=int(cfg.trainer.log_every_n_steps), callbacks=[], datamodule=datamodule)
        core_module = SimpleNamespace(n_critic=n_critic, n_generator=1, real_batches_per_iteration=n_critic)
        iterations_per_batch = resolve_iterations_per_batch(AUTO, core_trainer, core_module)
    several = iterations_per_batch > 1  # then the module ticks the window after each iteration
    module = BareIterationModule(BareIteration(cfg), window.warmup + window.steps, iterations_per_batch,
                                 window if several else None)
    trainer = build_trainer(cfg.trainer, [] if several else [Clock(window)], logger=False)
    trainer.fit(module, datamodule=datamodule)
    return module


# ---------------------------------------------------------------------------------------------- runs
class OpCounter(TorchDispatchMode):
    """Counts the ATen operators run, by name, views (which launch no kernel) left out: on a GPU most of the others
    are one kernel launch each, what a small model's step is bound by, and the count is the same on any machine and
    load (a read to the host, ``_local_scalar_dense``, counts too: it launches none but waits)."""

    def __init__(self):
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view:
            self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def ops_per_call(run, calls: int) -> collections.Counter[str]:
    """The operators of ``calls`` calls of ``run``, by name (a total over the calls)."""
    with OpCounter() as counter:
        for _ in range(calls):
            run()
    return counter.ops


def iteration_ab(model: str, args, out_dir: Path, calls: int = 300) -> dict:
    """The module's ``train_iteration`` against :class:`BareIteration` on the SAME generator, discriminator and
    optimizer objects, one real batch per D step, blocks of ``calls`` iterations alternated ``args.repeats``
    times in one process: what separates them is only the code around the arithmetic (the module's phases, its
    loss and penalty objects, the diagnostic terms, ``last_terms``), with Lightning's loop, the loader and the
    callbacks out of the picture. The whole-run clocks above cannot resolve a few microseconds per iteration on
    this host; these blocks can (medians of the blocks, us per iteration)."""
    from hydra.utils import instantiate

    from gan.utils.instantiate import build_module

    cfg = compose(model, args.mode, "core", 100, out_dir, args.overrides)
    pl.seed_everything(cfg.seed, workers=True)
    device = config_device(cfg)
    module = build_module(cfg).to(device)
    # a Trainer the module is connected to but that never fits: the module then takes its training-time shortcuts
    # (plain backward and optimizer step, D's freezing built once) exactly as in a run
    trainer = pl.Trainer(accelerator=device.type, devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, max_steps=1)
    trainer.strategy.connect(module)
    module.trainer = trainer
    trainer.strategy.setup_optimizers(trainer)
    module.on_train_start()
    opt_g, opt_d = module.optimizers(use_pl_optimizer=False)
    bare = BareIteration(cfg)
    bare.generator, bare.discriminator = module.generator, module.discriminator
    bare.optimizers = {"generator": opt_g, "discriminator": opt_d}
    bare.discriminator_parameters = list(module.discriminator.parameters())
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    batch = int(cfg.data.batch_size)
    data = datamodule.train_set.tensors[0]
    reals = [data[i * batch:(i + 1) * batch].to(device) for i in range(bare.n_critic)]
    labels = [None] * len(reals)
    runs = {"bare": lambda: bare(reals), "module": lambda: module.train_iteration(reals, labels, opt_g, opt_d)}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for name, run in runs.items():  # warm-up: first-call allocations
        for _ in range(calls):
            run()
    for repeat in range(args.repeats):
        # alternated which runs first, so neither path always runs on the machine the other just warmed (an audit)
        for name, run in (runs.items() if repeat % 2 == 0 else reversed(runs.items())):
            start = now(device)
            for _ in range(calls):
                run()
            times[name].append(1e6 * (now(device) - start) / calls)
    bare_us, module_us = statistics.median(times["bare"]), statistics.median(times["module"])
    # the operators each path runs, about one kernel launch each on a GPU (both step the same optimizers, so their
    # difference does not depend on the device): what the module adds is what a launch-bound GPU step pays for
    counted = 10
    ops = {name: ops_per_call(run, counted) for name, run in runs.items()}
    extra = collections.Counter(ops["module"])
    extra.subtract(ops["bare"])
    return {"kind": "iteration_ab", "model": model, "mode": args.mode, "device": describe(device),
            "calls_per_block": calls, "blocks": args.repeats, "bare_us": bare_us, "module_us": module_us,
            "difference_us": module_us - bare_us, "ratio": module_us / bare_us,
            "bare_ops": sum(ops["bare"].values()) / counted, "module_ops": sum(ops["module"].values()) / counted,
            "extra_ops": {name: n / counted for name, n in sorted(extra.items()) if n},
            "bare_us_range": [min(times["bare"]), max(times["bare"])],
            "module_us_range": [min(times["module"]), max(times["module"])], "load_1min": os.getloadavg()[0],
            # both paths stepped these same optimizers: 2 x (calls x (blocks + 1 warm-up) + the 10 counted) updates of G
            "generator_updates": max(int(state["step"]) for state in opt_g.state.values()),
            "discriminator_updates": max(int(state["step"]) for state in opt_d.state.values())}


def run_once(model: str, mode: str, variant: str, args, out_dir: Path) -> dict:
    device = torch.device(args.device)
    cfg = compose(model, mode, variant, args.warmup + args.steps, out_dir, args.overrides, args.iterations_per_batch)
    profiler = cProfile.Profile() if args.profile or args.count_calls else None
    window = Window(args.warmup, args.steps, device, profiler)
    load = os.getloadavg()[0]
    batched = None  # GAN iterations per Lightning batch (the bare loop has no batches)
    counted: dict = {}
    if variant == "bare":
        with without_lightning_env():
            bare_loop(cfg, window)
    else:
        from train import train

        # the progress bar and Lightning's notices go to a buffer (shown if the run fails)
        buffer = io.StringIO()
        try:
            with contextlib.redirect_stderr(buffer), contextlib.redirect_stdout(buffer):
                if variant == "lightning":
                    with without_lightning_env():  # as train.train unsets it on a machine without a GPU
                        batched = lightning_loop(cfg, window, args.iterations_per_batch).iterations_per_batch
                else:
                    clock = Clock(window) if args.iterations_per_batch == 1 else IterationClock(window)
                    timer = HookTimer(window, count_ops=args.hook_ops) if args.hook_costs or args.hook_ops else None
                    batched = train(cfg, callbacks=[clock, *([timer] if timer else [])])[1]["module"].iterations_per_batch
                    if timer is not None:
                        counted["hook_ms_per_step"] = timer.ms_per_step()
                    if args.hook_ops:
                        counted["hook_ops_per_step"] = timer.ops_per_step()
        except BaseException:
            sys.stderr.write(buffer.getvalue()[-4000:])
            raise
    if profiler is not None:
        stats = pstats.Stats(profiler, stream=sys.stdout)
        counted["python_calls_per_step"] = round(stats.total_calls / args.steps, 1)
    if profiler is not None and args.profile:
        path = args.profile / f"{model}-{mode}-{variant}.prof"
        path.parent.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(path)
        print(f"--- {model} {variant}: the timed window's {args.steps} generator steps under cProfile ({path})")
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
    return {"kind": "run", "model": model, "mode": mode, "variant": variant, "device": describe(device),
            "iterations_per_batch": batched,
            **{k: round(v, 4) for k, v in window.result().items()}, "load_1min": round(load, 2), **counted,
            **({"profiled": True} if profiler is not None or args.hook_costs or args.hook_ops else {})}  # the wrappers inflate the times


@contextlib.contextmanager
def without_lightning_env():
    """The bare loop as a script without Lightning runs it: importing Lightning sets
    PYTORCH_NVML_BASED_CUDA_CHECK=1, which makes every ``torch.cuda.is_available()`` on a machine without a
    GPU (Adam calls it at every step) try to load NVML (~0.1 ms a call); that cost is the framework's."""
    saved = os.environ.pop(NVML_CHECK, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[NVML_CHECK] = saved


def describe(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(rows: list[dict]) -> dict:
    """Per clock (wall, CPU): medians over repeats per variant, the spread (min, max), and the median of the
    per-round ratios to the bare loop (and of the core's to the bare iteration under Lightning: the part of
    the core's cost that is the framework's own)."""
    by_variant = {v: [r for r in rows if r["variant"] == v] for v in VARIANTS}
    summary: dict = {}
    for clock in CLOCKS:
        summary[clock] = {}
        for variant, runs in by_variant.items():
            summary[clock][variant] = spread([r[clock] for r in runs])
        for variant, base in RATIOS:
            ratios = [v[clock] / b[clock] for b, v in zip(by_variant[base], by_variant[variant])]
            summary[clock][f"{variant}_over_{base}"] = spread(ratios)
    for variant, runs in by_variant.items():
        summary[f"{variant}_iterations_per_batch"] = runs[0].get("iterations_per_batch") if runs else None
        summary[f"{variant}_median_iteration_ms"] = statistics.median(r["median_iteration_ms"] for r in runs)
        for part in ("inside_batch", "between_batches"):
            values = [r[f"median_{part}_ms"] for r in runs if f"median_{part}_ms" in r]
            if values:
                summary[f"{variant}_median_{part}_ms"] = statistics.median(values)
    return summary


def table(summaries: dict[str, dict], mode: str, device: str, loads: list[float], repeats: int,
          iterations_per_batch: int | str = AUTO) -> str:
    def cell(s, unit=" ms"):
        return f"{s['median']:.2f}{unit} ({s['min']:.2f}-{s['max']:.2f})"

    lines = [f"Mode {mode} on {device}, {repeats} alternation rounds; 1-min load average "
             f"{min(loads):.1f}-{max(loads):.1f} during the runs. Medians (min-max) per generator step; ratios per "
             f"round, then their median. model.iterations_per_batch={iterations_per_batch}; GAN iterations per Lightning "
             "batch (Lightning floor, core, defaults): " + "; ".join(
                 f"{model} " + ", ".join(str(summary[f'{v}_iterations_per_batch']) for v in VARIANTS[1:])
                 for model, summary in summaries.items()) + ".", "",
             "| model | clock | bare loop | bare iteration in Lightning | core (`callbacks=none logger=none metrics=none`) "
             "| shipped defaults (`logger=csv`) | Lightning / bare | core / bare | defaults / bare | core / Lightning |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for model, summary in summaries.items():
        for clock, name in CLOCKS.items():
            s = summary[clock]
            lines.append(f"| {model} | {name} | " + " | ".join(cell(s[v]) for v in VARIANTS) + " | "
                         + " | ".join(cell(s[f"{v}_over_{b}"], "x") for v, b in RATIOS) + " |")
    lines += ["", "Median iteration split (ms): the bare loop's whole iteration; the others' time inside "
              "Lightning's batch + between batches.", "",
              "| model | bare loop | bare iteration in Lightning: inside + between | core: inside + between "
              "| defaults: inside + between |", "|---|---|---|---|---|"]
    def split(summary, variant):  # none for several iterations per batch (the clock ticks per iteration there)
        if f"{variant}_median_inside_batch_ms" not in summary:
            return "-"
        return f"{summary[f'{variant}_median_inside_batch_ms']:.2f} + {summary[f'{variant}_median_between_batches_ms']:.2f}"

    for model, summary in summaries.items():
        parts = [split(summary, v) for v in VARIANTS[1:]]
        lines.append(f"| {model} | {summary['bare_median_iteration_ms']:.2f} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


def calls_table(rows: list[dict], models: list[str], mode: str) -> str:
    """Python function calls per generator step in the timed window (cProfile's count: every Python function
    and every builtin called), per variant and the ratios of the summary. The count does not depend on the
    machine's speed or load, so it compares code across commits and hosts where the clock cannot; it leaves out
    the work inside torch's C++ operators, which the bare loop does too."""
    lines = [f"Mode {mode}: Python calls per generator step (cProfile count over the timed window; the same on any "
             "host)", "", "| model | bare loop | bare iteration in Lightning | core | shipped defaults "
             "| Lightning / bare | core / bare | defaults / bare | core / Lightning |", "|---|---|---|---|---|---|---|---|---|"]
    for model in models:
        calls = {r["variant"]: r["python_calls_per_step"] for r in rows if r["model"] == model}
        lines.append(f"| {model} | " + " | ".join(f"{calls[v]:,.0f}" for v in VARIANTS) + " | "
                     + " | ".join(f"{calls[v] / calls[b]:.2f}x" for v, b in RATIOS) + " |")
    return "\n".join(lines)


def hook_costs_table(rows: list[dict], models: list[str]) -> str:
    """``--hook-costs``: per model and framework variant, each callback's hooks' time per generator step (median
    over the rounds, min-max in brackets), largest first."""
    lines = ["Callback hooks' wall time per generator step in the timed window (median over rounds, min-max):", "",
             "| model | variant | callback | ms per generator step |", "|---|---|---|---|"]
    for model in models:
        for variant in ("core", "defaults"):
            runs = [r["hook_ms_per_step"] for r in rows if r["model"] == model and r["variant"] == variant and "hook_ms_per_step" in r]
            names = {name for run in runs for name in run}
            costs = {name: spread([run.get(name, 0.0) for run in runs]) for name in names}
            for name, cost in sorted(costs.items(), key=lambda item: -item[1]["median"]):
                lines.append(f"| {model} | {variant} | {name} | {cost['median']:.3f} ({cost['min']:.3f}-{cost['max']:.3f}) |")
    return "\n".join(lines)


def hook_ops_table(rows: list[dict], models: list[str]) -> str:
    """``--hook-ops``: per model and framework variant, the operators each callback's hooks ran per generator step
    (the last round's: a count, the same in every round), the most frequent named."""
    lines = ["Operators (about one GPU kernel launch each) run by each callback's hooks per generator step in the timed "
             "window:", "", "| model | variant | callback | operators per generator step | most frequent |", "|---|---|---|---|---|"]
    for model in models:
        for variant in ("core", "defaults"):
            runs = [r["hook_ops_per_step"] for r in rows if r["model"] == model and r["variant"] == variant and "hook_ops_per_step" in r]
            for name, ops in sorted(runs[-1].items(), key=lambda item: -sum(item[1].values())) if runs else ():
                frequent = ", ".join(f"{op} {n:.2g}" for op, n in sorted(ops.items(), key=lambda item: -item[1])[:3])
                lines.append(f"| {model} | {variant} | {name} | {sum(ops.values()):.2f} | {frequent or '-'} |")
    return "\n".join(lines)


def iterations_setting(text: str) -> int | str:
    """``--iterations-per-batch``: ``auto`` or a positive integer (argparse exits 2 naming the option otherwise)."""
    if text == AUTO:
        return AUTO
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected auto or a positive integer, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every variant (the bare loop included)")
    parser.add_argument("--model", nargs="+", default=["wgan_gp", "dcgan"], help="model configs (wgan_gp, dcgan)")
    parser.add_argument("--mode", choices=sorted(MODES), default="tiny")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda for --mode gpu, else cpu")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed generator steps per run (default: 500 tiny, 40 otherwise)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="generator steps before the clock starts (default: 510 tiny, 10 otherwise)")
    parser.add_argument("--repeats", type=int, default=3, help="alternation rounds (bare, core, defaults)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                        help="a subset, e.g. for profiling one of them (no ratios then)")
    parser.add_argument("--iterations-per-batch", type=iterations_setting, default=AUTO, metavar="K",
                        help="the framework's model.iterations_per_batch: auto (the shipped default) or a positive "
                             "integer; the Lightning floor runs as many bare iterations per batch (auto: as many as "
                             "auto gives the core's config)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (0: torch's default, one per core). 1 by default: tiny networks "
                             "gain nothing from more, and on a shared machine extra threads wait for each other")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="run the timed window under cProfile, print the top functions and write "
                             "DIR/<model>-<mode>-<variant>.prof (the profiler's own cost inflates the times: use it to "
                             "find costs, not to report them)")
    parser.add_argument("--count-calls", action="store_true",
                        help="count the Python function calls per generator step in the timed window (cProfile) and "
                             "print them per variant: a measure of the framework's own work that the machine's load does "
                             "not move (one round suffices; the times of such runs are inflated by the profiler)")
    parser.add_argument("--hook-costs", action="store_true",
                        help="time every callback's hooks inside the timed window and print the time per generator step "
                             "of each callback (the framework's variants; the wrappers inflate the runs' times slightly)")
    parser.add_argument("--hook-ops", action="store_true",
                        help="count the operators (about one kernel launch each on a GPU) every callback's hooks run per "
                             "generator step in the timed window (the framework's variants; inflates the hooks' times)")
    parser.add_argument("--iteration-ab", action="store_true",
                        help="instead of whole runs: the module's train_iteration against the bare iteration on the same "
                             "network and optimizer objects, blocks of 300 iterations alternated --repeats times (the "
                             "module's own Python per iteration, which whole-run clocks cannot resolve), and the kernels "
                             "(ATen operators, views left out) each path launches per iteration")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON lines file to append to")
    args = parser.parse_args(argv)
    if args.out.is_dir():  # said before the runs: a folder here ended a 5-minute benchmark with a traceback, unwritten
        parser.error(f"--out {args.out} is a folder; expected a JSON lines file to append to, e.g. {args.out / RESULTS.name}")
    args.device = args.device or ("cuda" if args.mode == "gpu" else "cpu")
    args.steps = args.steps or (500 if args.mode == "tiny" else 40)
    args.warmup = args.warmup if args.warmup is not None else (510 if args.mode == "tiny" else 10)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda (or --mode gpu) needs a CUDA device")
        if args.mode != "gpu":
            args.overrides = ["trainer.accelerator=gpu", *args.overrides]
    if args.steps < 2 or args.warmup < 1:
        parser.error("--steps must be >= 2 and --warmup >= 1")
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    rows: list[dict] = []
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    context = {"commit": code_label(), "started": started, "steps": args.steps, "warmup": args.warmup,
               "overrides": args.overrides, "torch_threads": torch.get_num_threads(), "host": platform.node(),
               "iterations_per_batch_setting": args.iterations_per_batch}
    if args.iteration_ab:
        with tempfile.TemporaryDirectory() as tmp:
            rows = [{**iteration_ab(model, args, Path(tmp) / model), **context} for model in args.model]
        print("\n| model | bare iteration | module iteration | difference | module / bare | kernels: bare / module | "
              "the module's extra kernels |\n|---|---|---|---|---|---|---|")
        for row in rows:
            extra = ", ".join(f"{name} {n:+g}" for name, n in row["extra_ops"].items()) or "none"
            print(f"| {row['model']} | {row['bare_us']:.1f} us ({row['bare_us_range'][0]:.1f}-{row['bare_us_range'][1]:.1f}) | "
                  f"{row['module_us']:.1f} us ({row['module_us_range'][0]:.1f}-{row['module_us_range'][1]:.1f}) | "
                  f"{row['difference_us']:.1f} us | {row['ratio']:.3f}x | {row['bare_ops']:g} / {row['module_ops']:g} | {extra} |")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
        print(f"\nappended {len(rows)} rows to {args.out} ({args.repeats} blocks of 300 iterations each, medians)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for model in args.model:
                for variant in args.variants:
                    row = {**run_once(model, args.mode, variant, args, Path(tmp) / f"{model}-{variant}-{repeat}"),
                           "repeat": repeat, **context}
                    print(f"{model:8s} {variant:8s} round {repeat}: {row['ms_per_step']:.2f} ms/step, CPU "
                          f"{row['cpu_ms_per_step']:.2f} ms/step (median iteration {row['median_iteration_ms']:.2f} ms, "
                          f"load {row['load_1min']})", flush=True)
                    rows.append(row)
    if args.hook_costs:
        print()
        print(hook_costs_table(rows, args.model))
    if args.hook_ops:
        print()
        print(hook_ops_table(rows, args.model))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
        if set(args.variants) == set(VARIANTS):
            summaries = {m: summarize([r for r in rows if r["model"] == m]) for m in args.model}
            for model, summary in summaries.items():
                handle.write(json.dumps({"kind": "summary", "model": model, "mode": args.mode, "device": rows[0]["device"],
                                         "repeats": args.repeats, **summary, **context}) + "\n")
            print()
            print(table(summaries, args.mode, rows[0]["device"], [r["load_1min"] for r in rows], args.repeats,
                        args.iterations_per_batch))
            if args.count_calls:
                print()
                print(calls_table(rows, args.model, args.mode))
    print(f"\nappended {len(rows)} runs to {args.out}")


if __name__ == "__main__":
    main()
