"""Watches a GAN train and says when it goes wrong, with what to try.

Four failure modes, each a detector with its own thresholds and action (config: conf/callbacks/gan_health.yaml):

- ``discriminator_overpowers``: D loss and D(G(z)) both near 0 for a sustained window of generator steps
  (sigmoid losses only: critic scores have no "near 0" that means "won");
- ``vanishing_generator_gradients``: the generator's gradient norm (median over a window) collapses
  relative to its median over the first generator steps;
- ``mode_collapse``: the mean pairwise distance of samples of the fixed noise falls far below that of
  real samples;
- ``divergence``: a NaN/Inf loss, score or gradient, or critic scores beyond a bound.

The callback only reads: the losses and scores the module logs (``trainer.callback_metrics``), the
gradients at the optimizer step, and samples of the fixed noise in eval mode. Its one intervention is the
configured action: ``stop`` ends training after the current batch, ``stop_and_keep_last_healthy`` also
copies the newest checkpoint saved before the detection to ``last_healthy.ckpt`` next to it.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
import statistics
from collections import deque
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from gan.callbacks.grad_norm import NetworkOfOptimizer
from gan.utils.logging import alert, log_scalars, update_summary
from gan.utils.steps import interval_crossed

log = logging.getLogger("gan")

ACTIONS = ("warn", "stop", "stop_and_keep_last_healthy")
HEALTHY_CHECKPOINT_NAME = "last_healthy.ckpt"

REMEDIES = {
    "discriminator_overpowers": (
        "weaken D or help G: lower D's learning rate or use TTUR (optimizer=ttur), fewer D steps per G step "
        "(model.n_critic), one-sided label smoothing (model.real_label=0.9), instance noise "
        "(model.instance_noise_std=0.1), spectral norm in D "
        "(model.discriminator.spectral_norm=true), or a loss that keeps gradients (loss=wasserstein with a "
        "gradient penalty, loss=hinge)"
    ),
    "vanishing_generator_gradients": (
        "use the non-saturating generator loss (loss=non_saturating) or a Wasserstein/hinge loss, and "
        "weaken D: lower its learning rate or TTUR, label smoothing, instance noise, spectral norm; if the "
        "generator's tanh output saturates, lower G's learning rate"
    ),
    "mode_collapse": (
        "lower the learning rates or use TTUR, a Wasserstein loss with gradient penalty (model=wgan_gp), "
        "spectral norm, minibatch discrimination / minibatch stddev in D, fewer D steps"
    ),
    "divergence": (
        "lower both learning rates, constrain D (gradient penalty, spectral norm, gradient clipping), "
        "check that the data is in the generator's output range ([-1, 1] for tanh)"
    ),
}


# ------------------------------------------------------------------------------------------- detectors
@dataclass
class OverpoweredDiscriminator:
    """Fires when, for ``window`` consecutive generator steps, D loss < ``max_d_loss`` and the mean
    D(G(z)) < ``max_fake_score`` (a probability)."""

    action: str = "warn"
    window: int = 200
    max_d_loss: float = 0.005
    max_fake_score: float = 0.005

    def __post_init__(self) -> None:
        self._run = 0

    def update(self, d_loss: float, fake_score: float) -> dict[str, float] | None:
        self._run = self._run + 1 if d_loss < self.max_d_loss and fake_score < self.max_fake_score else 0
        if self._run >= self.window:
            return {"d_loss": d_loss, "fake_score": fake_score, "generator_steps_in_a_row": self._run}
        return None


@dataclass
class VanishingGeneratorGradients:
    """Fires when the median generator gradient norm over the last ``window`` generator steps is below
    ``min_ratio`` times its median over the first ``reference_steps`` generator steps."""

    action: str = "warn"
    reference_steps: int = 50
    window: int = 50
    min_ratio: float = 1.0e-3

    def __post_init__(self) -> None:
        self._early: list[float] = []
        self._recent: deque[float] = deque(maxlen=int(self.window))

    def update(self, grad_norm: float) -> dict[str, float] | None:
        if len(self._early) < self.reference_steps:
            self._early.append(grad_norm)
            return None
        self._recent.append(grad_norm)
        if len(self._recent) < self.window:
            return None
        reference, recent = statistics.median(self._early), statistics.median(self._recent)
        if reference > 0 and recent < self.min_ratio * reference:
            return {"early_median_norm": reference, "recent_median_norm": recent, "ratio": recent / reference}
        return None


@dataclass
class ModeCollapse:
    """Every ``every_n_generator_steps`` from ``start_generator_step`` on, with ``num_samples`` samples of
    the fixed noise and as many real ones: fires when the samples' mean pairwise distance is below
    ``min_diversity_ratio`` times the real data's, or (1x28x28 data, read by the shipped digit classifier)
    when they cover fewer than ``min_class_coverage`` times as many predicted classes as the real samples."""

    action: str = "warn"
    every_n_generator_steps: int = 100
    start_generator_step: int = 500
    num_samples: int = 256
    min_diversity_ratio: float = 0.1
    min_class_coverage: float | None = 0.5

    def due(self, generator_step: int, previous: int | None = None) -> bool:
        """``previous``: the generator step at the last check of the run (default: one step before)."""
        previous = generator_step - 1 if previous is None else previous
        return generator_step >= self.start_generator_step and interval_crossed(generator_step, previous, self.every_n_generator_steps)

    def check(self, diversity_ratio: float, class_coverage: float | None = None) -> dict[str, float] | None:
        low_diversity = diversity_ratio < self.min_diversity_ratio
        few_classes = None not in (class_coverage, self.min_class_coverage) and class_coverage < self.min_class_coverage
        if not (low_diversity or few_classes):
            return None
        evidence = {"diversity_ratio": diversity_ratio, "min_diversity_ratio": self.min_diversity_ratio}
        if class_coverage is not None:
            evidence.update(class_coverage=class_coverage, min_class_coverage=self.min_class_coverage)
        return evidence


@dataclass
class Divergence:
    """Fires on any non-finite logged loss/score or gradient norm, or on a mean critic score (raw-score
    losses) whose magnitude exceeds ``max_abs_score``."""

    action: str = "warn"
    max_abs_score: float = 1.0e4


DETECTORS = {
    "discriminator_overpowers": OverpoweredDiscriminator,
    "vanishing_generator_gradients": VanishingGeneratorGradients,
    "mode_collapse": ModeCollapse,
    "divergence": Divergence,
}


def make_detector(kind: str, options: Mapping[str, Any] | None):
    cls = DETECTORS[kind]
    options = OmegaConf.to_container(options) if isinstance(options, DictConfig) else dict(options or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"gan_health.{kind}: unknown option(s) {unknown}; expected some of {sorted(known)}")
    detector = cls(**options)
    if detector.action not in ACTIONS:
        raise ValueError(f"gan_health.{kind}.action is {detector.action!r}; expected one of {list(ACTIONS)}")
    return detector


def mean_pairwise_distance(samples: Tensor) -> float:
    """Mean Euclidean distance between the flattened samples (all pairs)."""
    return float(torch.pdist(samples.detach().flatten(1).float().cpu()).mean())


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf": JSON has no literal for them
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


# -------------------------------------------------------------------------------------------- callback
class GANHealth(pl.Callback):
    """Runs the four detectors; each kind fires at most once per run.

    A detection (``event``: kind, generator step, Lightning global step, evidence, action, remedy) is
    appended as one JSON line to ``events_path``, logged as ``health/<kind>`` = 1 at that step, shown once
    in the console with remedies, and raised as a W&B alert when W&B is active; the events are summarised
    when training ends (console and W&B run summary). ``health/diversity_ratio`` (and, for digit-shaped
    data, ``health/class_coverage``) is logged at every mode-collapse check.
    """

    def __init__(self, events_path: str | None = None, discriminator_overpowers: Mapping | None = None,
                 vanishing_generator_gradients: Mapping | None = None, mode_collapse: Mapping | None = None,
                 divergence: Mapping | None = None):
        self.events_path = Path(events_path) if events_path else None
        options = {"discriminator_overpowers": discriminator_overpowers, "vanishing_generator_gradients":
                   vanishing_generator_gradients, "mode_collapse": mode_collapse, "divergence": divergence}
        self._options = options
        self.detectors = {kind: make_detector(kind, opts) for kind, opts in options.items()}
        self.events: list[dict[str, Any]] = []
        self._network_of = NetworkOfOptimizer()
        self._grad_norms: dict[str, Tensor] = {}
        self._seen_generator_steps: int | None = None
        self._real: Tensor | None = None
        self._real_classes: tuple[Tensor, int] | None = None  # (the real draw, distinct classes read in it)
        self._classifier = None
        self._stop_requested = False

    @property
    def fired(self) -> set[str]:
        return {event["kind"] for event in self.events}

    # ----------------------------------------------------------------------------------- observations
    def on_train_start(self, trainer, pl_module) -> None:
        # fresh detector state per fit; kinds that already fired (restored from a checkpoint) stay fired
        self.detectors = {kind: make_detector(kind, opts) for kind, opts in self._options.items()}
        self._seen_generator_steps = pl_module.generator_steps

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        network = self._network_of(optimizer, pl_module)
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        # kept as a tensor until the batch ends: one device sync per batch, not one per optimizer step
        self._grad_norms[network] = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items() if name.startswith(("train/d/", "train/g/"))}
        norms, self._grad_norms = {network: float(norm) for network, norm in self._grad_norms.items()}, {}
        self._check_divergence(trainer, pl_module, metrics, norms)
        step = pl_module.generator_steps
        if step != self._seen_generator_steps:
            previous, self._seen_generator_steps = self._seen_generator_steps, step
            self._after_generator_step(trainer, pl_module, metrics, step, norms.get("g"), previous)
        if any(d.action != "warn" for d in self.detectors.values()):
            # every rank must agree, or one would wait forever in the next collective
            if trainer.strategy.reduce_boolean_decision(self._stop_requested, all=False):
                trainer.should_stop = True

    def _check_divergence(self, trainer, pl_module, metrics: dict[str, float], grad_norms: dict[str, float]) -> None:
        evidence = {name: value for name, value in metrics.items() if not math.isfinite(value)}
        evidence.update({f"grad/{network}/norm": norm for network, norm in grad_norms.items() if not math.isfinite(norm)})
        if not evidence and not pl_module.loss.logits_are_probabilities:
            bound = self.detectors["divergence"].max_abs_score
            scores = {name: metrics[name] for name in ("train/d/real_score", "train/d/fake_score") if name in metrics}
            if any(abs(value) > bound for value in scores.values()):
                evidence = {**scores, "max_abs_score": bound}
        if evidence:
            self._fire(trainer, pl_module, "divergence", evidence)

    def _after_generator_step(self, trainer, pl_module, metrics: dict[str, float], step: int,
                              generator_grad_norm: float | None, previous_step: int | None) -> None:
        if pl_module.loss.logits_are_probabilities and {"train/d/loss", "train/d/fake_score"} <= set(metrics):
            evidence = self.detectors["discriminator_overpowers"].update(metrics["train/d/loss"], metrics["train/d/fake_score"])
            if evidence:
                self._fire(trainer, pl_module, "discriminator_overpowers", evidence)
        if generator_grad_norm is not None and math.isfinite(generator_grad_norm):
            evidence = self.detectors["vanishing_generator_gradients"].update(generator_grad_norm)
            if evidence:
                self._fire(trainer, pl_module, "vanishing_generator_gradients", evidence)
        collapse = self.detectors["mode_collapse"]
        if collapse.due(step, previous_step):
            samples = pl_module.sample_fixed(collapse.num_samples)
            real = self._real_samples(trainer, collapse.num_samples)
            signals = {"health/diversity_ratio": mean_pairwise_distance(samples) / mean_pairwise_distance(real)}
            coverage = self.class_coverage(samples, real) if collapse.min_class_coverage is not None else None
            if coverage is not None:
                signals["health/class_coverage"] = coverage
            log_scalars(trainer, signals, step)
            evidence = collapse.check(signals["health/diversity_ratio"], coverage)
            if evidence:
                self._fire(trainer, pl_module, "mode_collapse", evidence)

    def _real_samples(self, trainer, n: int) -> Tensor:
        """The same real draw at every check, so the reference does not move."""
        if self._real is None or len(self._real) != n:
            self._real = trainer.datamodule.real_samples(n, generator=torch.Generator().manual_seed(0))
        return self._real

    def class_coverage(self, samples: Tensor, real: Tensor) -> float | None:
        """Distinct classes the digit classifier reads in ``samples`` over those it reads in ``real``; None
        for data it cannot read (anything but 1x28x28)."""
        from gan.metrics.digit_classifier import INPUT_SHAPE
        from gan.metrics.features import DigitFeatures

        if tuple(samples.shape[1:]) != tuple(INPUT_SHAPE):
            return None
        if self._classifier is None:
            self._classifier = DigitFeatures()
        if self._real_classes is None or self._real_classes[0] is not real:  # the fixed draw: read it once
            self._real_classes = (real, self._distinct_classes(real))
        return self._distinct_classes(samples) / self._real_classes[1]

    def _distinct_classes(self, images: Tensor) -> int:
        return self._classifier(images.cpu())["logits"].argmax(dim=1).unique().numel()

    # ------------------------------------------------------------------------------------------ events
    def _fire(self, trainer, pl_module, kind: str, evidence: dict[str, float]) -> None:
        if kind in self.fired:
            return
        action = self.detectors[kind].action
        event = {"kind": kind, "generator_step": pl_module.generator_steps, "global_step": trainer.global_step,
                 "evidence": evidence, "action": action, "remedy": REMEDIES[kind]}
        if action == "stop_and_keep_last_healthy":
            event["last_healthy_checkpoint"] = self._keep_last_healthy(trainer)
        self.events.append(event)
        self._stop_requested |= action != "warn"
        log_scalars(trainer, {f"health/{kind}": 1.0}, pl_module.generator_steps)
        if not trainer.is_global_zero:
            return
        if self.events_path is not None:
            self.events_path.parent.mkdir(parents=True, exist_ok=True)
            with self.events_path.open("a") as handle:
                handle.write(json.dumps(_json_safe(event)) + "\n")
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in evidence.items())
        consequence = {"warn": "training continues", "stop": "stopping training",
                       "stop_and_keep_last_healthy": f"stopping training; last healthy checkpoint: {event.get('last_healthy_checkpoint')}"}[action]
        log.warning("GAN health: %s at generator step %d (%s); %s. Try: %s.", kind, event["generator_step"], shown, consequence, REMEDIES[kind])
        alert(trainer.loggers, f"GAN health: {kind}", f"Generator step {event['generator_step']}: {shown}. Try: {REMEDIES[kind]}.")

    def _keep_last_healthy(self, trainer) -> str | None:
        """Copy the newest checkpoint on disk (all were saved before this batch's detection: Lightning runs
        checkpoint callbacks after the others) to ``last_healthy.ckpt``, which later saves never overwrite."""
        saved = [Path(path) for callback in trainer.checkpoint_callbacks
                 for path in (getattr(callback, "last_model_path", ""), getattr(callback, "best_model_path", ""))
                 if path and Path(path).name != HEALTHY_CHECKPOINT_NAME and Path(path).is_file()]
        if not saved:
            log.warning("GAN health: no checkpoint was saved before the failure, so there is no healthy one to keep")
            return None
        newest = max(saved, key=lambda path: path.stat().st_mtime)
        target = newest.with_name(HEALTHY_CHECKPOINT_NAME)
        if trainer.is_global_zero:
            shutil.copyfile(newest, target)
        return str(target)

    def on_train_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        kinds = [event["kind"] for event in self.events]
        update_summary(trainer.loggers, {"health/num_events": len(kinds), "health/kinds": ",".join(kinds) or "none"})
        if not kinds:
            log.info("GAN health: no problems detected in %d generator steps", pl_module.generator_steps)
            return
        lines = [f"  {e['kind']} at generator step {e['generator_step']} ({e['action']})" for e in self.events]
        where = f"; events in {self.events_path}" if self.events_path else ""
        log.warning("GAN health summary: %d problem(s)%s\n%s", len(kinds), where, "\n".join(lines))

    # ------------------------------------------------------------------------------ resume (checkpoint)
    def state_dict(self) -> dict[str, Any]:
        return {"events": _json_safe(self.events)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.events = list(state_dict.get("events", []))


