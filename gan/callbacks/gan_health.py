"""Watches a GAN train and says when it goes wrong, with what to try.

Five failure modes, each a detector with its own thresholds and action (config: conf/callbacks/gan_health.yaml):

- ``discriminator_overpowers``: D loss and D(G(z)) both within a margin of the lowest values the
  discriminator can reach, in most of a window of generator steps (sigmoid losses only: critic scores
  have no "near 0" that means "won"; the lowest values account for label smoothing, noisy labels, flips);
- ``vanishing_generator_gradients``: the generator's gradient norm (median over a window) collapses
  relative to its median over the first generator steps;
- ``mode_collapse``: the mean pairwise distance of samples of the fixed noise falls far below that of
  real samples (and, on digit data, the classes the shipped digit classifier reads in them), or, on data whose
  modes are known (the 2D toys, the digits), the effective number of modes they fall on drops to a fraction of
  the most it reached;
- ``divergence``: a NaN/Inf loss, score or generator gradient, a real-fake critic score gap beyond a bound, or
  (at the mode-collapse check's cadence, from its first interval) samples spread far wider than the data;
- ``ignored_labels`` (conditional models, at the mode-collapse check's cadence): samples that barely change when
  only their labels change, against how much they change when only their latent codes do.

What it reads, and when. Every iteration it keeps the module's newest terms (``pl_module.last_terms``:
``train/d/*``, ``train/g/*``) and the per-parameter norms of the generator's gradients (one ``_foreach_norm``
kernel) as they are: device tensors, no host sync, no further kernel. Every ``sync_every_n_iterations``
iterations, before every checkpoint save and at the end of training, the kept values come to the host in one
stack and one transfer (averaged over DDP ranks first, so every rank sees the same numbers and takes the same
decision) and the detectors run over them row by row, exactly as if they had run at every iteration: only the
reaction waits, by at most ``sync_every_n_iterations - 1`` iterations. On CPU in one process, where reading one
value costs no sync, the generator's loss is also read at every iteration and a non-finite one checks at once: a diverging D
reaches G's loss within the same iteration (G's step runs D), a diverging G within the next, so a run that
turns to NaN (whose arithmetic is ~40x slower on CPU) stops without running on. Steps a mixed-precision
GradScaler skipped (its scaled gradients overflowed, which it provokes on purpose) are left out.

The callback only reads; its one intervention is the configured action: ``stop`` ends training after the
current iteration, ``stop_and_keep_last_healthy`` (the default for ``divergence``) also copies the newest
checkpoint saved before the detection to ``last_healthy.ckpt`` next to it.
"""
from __future__ import annotations

import json
import logging
import math
import re
import shutil
import statistics
from collections import deque
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from gan.callbacks.grad_norm import NetworkOfOptimizer, combined_norm, scaler_skips_nonfinite_steps
from gan.losses import GradientPenalty, HingeLoss, WassersteinLoss
from gan.metrics.modes import effective_count, nearest_modes
from gan.nets.base import has_spectral_norm
from gan.utils.checkpoint import non_finite_weights
from gan.utils.config import running_preset_setting, ttur_learning_rates
from gan.utils.errors import ConfigError
from gan.utils.json_values import json_safe
from gan.utils.logging import alert, log_scalars, update_summary
from gan.utils.steps import interval_crossed

log = logging.getLogger("gan")

ACTIONS = ("warn", "stop", "stop_and_keep_last_healthy")
#: a detector's numeric options: (smallest, largest or None) allowed value, checked by :func:`check_bounds`
Bounds = dict[str, tuple[float, float | None]]
HEALTHY_CHECKPOINT_NAME = "last_healthy.ckpt"
#: the generator's gradient norm, stored after the module's terms in each checkpointed row
GENERATOR_GRAD_NORM = "grad/g/norm"
#: read at every iteration on CPU in one process: every divergence reaches it within an iteration (module docstring)
GENERATOR_LOSS = "train/g/loss"

#: the first advice against ignored labels, left out for a generator that embeds its label already (see remedy)
EMBEDDING_ADVICE = ("give the generator the class where it acts from its first layer (model.generator.conditioning=embedding; "
                    "conditional batch norm's per-class scales start equal and move slowly), ")
#: what to try, each with the option that does it (an audit found remedies naming tricks without their options)
REMEDIES = {
    # (TTUR, which the first wording named here, gives D the larger learning rate: it strengthens D; an audit)
    "discriminator_overpowers": (
        "weaken D or help G: lower D's learning rate (optimizer.discriminator.lr), fewer D steps per G step "
        "(model.n_critic), one-sided label smoothing (model.real_label=0.9), instance noise "
        "(model.instance_noise_std=0.1), spectral norm in D (model.discriminator.spectral_norm=true), or a loss "
        "that keeps gradients (loss=hinge, or model=wgan_gp)"
    ),
    "vanishing_generator_gradients": (
        "use the non-saturating generator loss (loss=non_saturating) or loss=hinge, and weaken D: lower its "
        "learning rate (optimizer.discriminator.lr), label smoothing (model.real_label=0.9), instance noise "
        "(model.instance_noise_std=0.1), spectral norm (model.discriminator.spectral_norm=true); if the "
        "generator's tanh output saturates, lower G's learning rate"
    ),
    "mode_collapse": (
        "lower the learning rates (optimizer.generator.lr, optimizer.discriminator.lr) or use TTUR (optimizer=ttur), "
        "a Wasserstein loss with gradient penalty "
        "(model=wgan_gp), spectral norm (model.discriminator.spectral_norm=true), minibatch stddev or "
        "discrimination in D (model.discriminator.minibatch=stddev or =discrimination), fewer D steps (model.n_critic)"
    ),
    "ignored_labels": (
        EMBEDDING_ADVICE + "make sure a network of your own reads its labels argument (a discriminator that ignores them "
        "gives the generator no reason to follow them), or train longer"
    ),
    "divergence": (
        "lower both learning rates, constrain D (a gradient penalty: model=wgan_gp; spectral norm: "
        "model.discriminator.spectral_norm=true; weight clipping: model.weight_clip=0.01), check that the data is in "
        "the generator's output range ([-1, 1] for image data's tanh output)"
    ),
}


#: each trick a remedy may name, with the phrase that names it (the whole list item, so that dropping it keeps the
#: list's commas right); a run that has the trick is not advised it (a WGAN-GP run's log, 2026-12-07: its mode
#: collapse was told to try model=wgan_gp; an SN-GAN run's, spectral norm)
TRICK_PHRASES = {
    "wgan_gp": ("a Wasserstein loss with gradient penalty (model=wgan_gp)", "a loss that keeps gradients (loss=hinge, or model=wgan_gp)"),
    "hinge": ("a loss that keeps gradients (loss=hinge, or model=wgan_gp)",),
    "spectral_norm": ("spectral norm in D (model.discriminator.spectral_norm=true)", "spectral norm (model.discriminator.spectral_norm=true)",
                      "spectral norm: model.discriminator.spectral_norm=true"),
    "minibatch": ("minibatch stddev or discrimination in D (model.discriminator.minibatch=stddev or =discrimination)",),
    "label_smoothing": ("one-sided label smoothing (model.real_label=0.9)", "label smoothing (model.real_label=0.9)"),
    "instance_noise": ("instance noise (model.instance_noise_std=0.1)",),
}


def tricks_left_out(pl_module) -> set[str]:
    """The tricks of :data:`TRICK_PHRASES` this run already trains with (read from the module it built, so presets
    and overrides count alike; a Wasserstein loss alone, weight clipping, is not ``wgan_gp``: the penalty is the
    advice), and label smoothing where its loss takes no targets (Wasserstein, hinge: the option is refused)."""
    used = set()
    loss, penalties = getattr(pl_module, "loss", None), getattr(pl_module, "penalties", {}) or {}
    if isinstance(loss, WassersteinLoss) and any(isinstance(penalty, GradientPenalty) for penalty in penalties.values()):
        used.add("wgan_gp")
    if isinstance(loss, HingeLoss):
        used.add("hinge")
    discriminator = getattr(pl_module, "discriminator", None)
    if isinstance(discriminator, torch.nn.Module):
        if has_spectral_norm(discriminator):
            used.add("spectral_norm")
        if getattr(discriminator, "minibatch", None) is not None:
            used.add("minibatch")
    targets = getattr(pl_module, "label_targets", None)
    if targets is not None and (targets.real < 1.0 or targets.real_range is not None):
        used.add("label_smoothing")
    if loss is not None and not getattr(loss, "has_targets", False):
        used.add("label_smoothing")
    if getattr(getattr(pl_module, "instance_noise", None), "active", False):
        used.add("instance_noise")
    return used


def without_option(text: str, phrase: str) -> str:
    """``text`` with one item of its lists removed: ``"a, b, or c"`` less ``c`` is ``"a, or b"``, less ``b`` is
    ``"a, or c"``; items are separated by ", " or "; " and a phrase counts only as a whole item ("label smoothing"
    is not the end of "one-sided label smoothing"); a phrase it does not hold leaves it as it is."""
    item = re.escape(phrase)
    last = re.search(rf", or {item}(?=$|[.;)])", text)
    if last:  # the list's last item: the one before it takes its "or"
        head, tail = text[:last.start()], text[last.end():]
        before = last_top_level_comma(head)
        return (head[:before] + ", or " + head[before + 2:] if before >= 0 else head) + tail
    for pattern in (rf", {item}(?=$|, |; |[.)])", rf"(?:(?<=^)|(?<=: )|(?<=\()|(?<=; )){item}(?:, |; )"):
        if re.search(pattern, text):
            return re.sub(pattern, "", text, count=1)
    return text


def last_top_level_comma(text: str) -> int:
    """Where the last ", " outside parentheses starts in ``text``, or -1."""
    depth, found = 0, -1
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and text.startswith(", ", index):
            found = index
    return found


def remedy(kind: str, pl_module, optimizer_preset: str | None = None) -> str:
    """What to try, with this run's own levers: a run whose learning rates follow ``model.schedules.lr`` (r3gan,
    the gan toy presets) is told to change the schedule, which overwrites ``optimizer.*.lr`` and ``optimizer=ttur``
    at every step; a run that already has penalties is told to raise them (an audit found both advised as new);
    fewer D steps are advised only where there are several, and a saturating generator loss, whose gradient a
    winning D takes away, comes first (an audit: a minimax run whose D won was told neither). ``optimizer_preset``:
    the run's per-data preset when it sets optimizer values, which it writes over ``optimizer=ttur`` (a dcgan
    digits run was advised TTUR, and following that got the preset's warning): TTUR's learning rates are then advised
    as command-line values, which go over the preset's (``presets=none`` would also drop its steps, batch and EMA)."""
    text = REMEDIES[kind]
    for trick in sorted(tricks_left_out(pl_module)):
        for phrase in TRICK_PHRASES[trick]:
            text = without_option(text, phrase)
    schedules, penalties = getattr(pl_module, "schedules", {}) or {}, getattr(pl_module, "penalties", {}) or {}
    if getattr(pl_module, "n_critic", 1) <= 1:
        text = text.replace(", fewer D steps per G step (model.n_critic)", "").replace(", fewer D steps (model.n_critic)", "")
    saturates = getattr(getattr(pl_module, "loss", None), "generator_saturates", False)
    if kind == "discriminator_overpowers" and saturates:
        text = ("the minimax generator loss gives G no gradient while D wins: use loss=non_saturating; and " + text)
    elif kind == "vanishing_generator_gradients" and not saturates:
        text = text.replace("use the non-saturating generator loss (loss=non_saturating) or loss=hinge, and weaken D",
                            "weaken D")
    if kind == "divergence" and penalties:
        text = text.replace("constrain D (a gradient penalty: model=wgan_gp; ",
                            f"constrain D more (a larger weight or gamma for its {', '.join(sorted(penalties))}; ")
    clip = getattr(pl_module, "weight_clip", None)
    if kind == "divergence" and clip is not None:  # WGAN: its clipping is the lever, tighter
        text = text.replace("weight clipping: model.weight_clip=0.01", f"a tighter weight clip than its {clip:g}: model.weight_clip")
    if kind == "ignored_labels" and getattr(getattr(pl_module, "generator", None), "conditioning", None) == "embedding":
        text = text.replace(EMBEDDING_ADVICE, "")  # it has it
    lr_schedules = [name for name, setting in schedules.items() if getattr(setting, "hyperparameter", None) == "lr"]
    if lr_schedules:  # TTUR, advised and then said to be overwritten in one line (a README walk-through): not advised
        text = text.replace(" or use TTUR (optimizer=ttur)", "")
        if "learning rate" in text:  # every one of them: sngan's toy preset schedules G's and D's apart
            names = " and ".join(f"model.schedules.{name}" for name in lr_schedules)
            values = " and ".join(f"model.schedules.{name}.value.start / .end" for name in lr_schedules)
            one = len(lr_schedules) == 1
            text += (f"; this run's learning rates follow {names}, which overwrite{'s' if one else ''} optimizer.*.lr "
                     f"and optimizer=ttur at every step: change {'its' if one else 'their'} values ({values})")
    elif optimizer_preset:  # command-line values (optimizer.generator.lr=...) still go over the preset's; a group does not
        # (and presets=none, which would let the group act, drops the preset's every value: its steps, batch, EMA)
        g_lr, d_lr = ttur_learning_rates()
        ttur = (f" or use TTUR's learning rates (optimizer.generator.lr={g_lr:g} optimizer.discriminator.lr={d_lr:g}; "
                f"the per-data preset {optimizer_preset} sets its values over optimizer=ttur)")
        text = text.replace(" or use TTUR (optimizer=ttur)", ttur)
    return text


# ------------------------------------------------------------------------------------------- detectors
def binary_entropy(p: float) -> float:
    """H(p) in nats: the lowest mean binary cross-entropy against targets whose mean is ``p``."""
    return 0.0 if p <= 0.0 or p >= 1.0 else -(p * math.log(p) + (1.0 - p) * math.log(1.0 - p))


def achievable_minimum(label_targets) -> tuple[float, float]:
    """(lowest D loss, its D(G(z))) for a sigmoid discriminator trained with these targets.

    The targets a sample gets (smoothed, noisy, flipped) do not depend on the sample, so the best a
    discriminator can do is to output their mean: real targets average (1 - flip) * mu and fake ones
    flip * mu, mu being the real label (or the middle of the noisy range). The cross-entropy is then the
    entropy of those means (0.325 for one-sided smoothing to 0.9); without label tricks both are 0."""
    if label_targets is None:
        return 0.0, 0.0
    lo, hi = label_targets.real_range or (label_targets.real, label_targets.real)
    mu, flip = (lo + hi) / 2, label_targets.flip_prob
    real_mean, fake_mean = (1.0 - flip) * mu, flip * mu
    return binary_entropy(real_mean) + binary_entropy(fake_mean), fake_mean


@dataclass
class OverpoweredDiscriminator:
    """Fires when, in at least ``fraction`` of the last ``window`` generator steps, D loss < its lowest
    achievable value + ``max_d_loss`` and the mean D(G(z)) < its optimum + ``max_fake_score`` (a probability).
    The lowest values are 0 without label tricks (see :func:`achievable_minimum`). A share of the window, not
    steps in a row: one noisy batch above the margin restarted a count of steps in a row, so the saturating
    loss with a frozen G, D winning 265 of 360 steps in runs of at most 71, never fired (an audit)."""

    action: str = "warn"
    window: int = 200
    fraction: float = 0.5
    max_d_loss: float = 0.005
    max_fake_score: float = 0.005
    BOUNDS: ClassVar[Bounds] = {
        "window": (1, None), "fraction": (1e-9, 1), "max_d_loss": (0, None), "max_fake_score": (0, 1)}

    def __post_init__(self) -> None:
        self._recent: deque[bool] = deque(maxlen=int(self.window))  # whether D was near its floor, per step
        self._near = 0  # how many of _recent are
        self.loss_floor, self.fake_score_floor = 0.0, 0.0

    def update(self, d_loss: float, fake_score: float) -> dict[str, float] | None:
        near_floor = d_loss < self.loss_floor + self.max_d_loss and fake_score < self.fake_score_floor + self.max_fake_score
        if len(self._recent) == self._recent.maxlen:
            self._near -= self._recent[0]
        self._recent.append(near_floor)
        self._near += near_floor
        if len(self._recent) == self.window and self._near >= self.fraction * self.window:
            return {"d_loss": d_loss, "fake_score": fake_score, "d_loss_floor": self.loss_floor,
                    "steps_near_floor": self._near, "window": self.window}
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"recent": list(self._recent)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        # a checkpoint of the steps-in-a-row counter ("run") starts the window anew
        self._recent = deque((bool(v) for v in state.get("recent", [])), maxlen=int(self.window))
        self._near = sum(self._recent)


@dataclass
class VanishingGeneratorGradients:
    """Fires when the median generator gradient norm over the last ``window`` generator steps is below
    ``min_ratio`` times its median over the first ``reference_steps`` generator steps."""

    action: str = "warn"
    reference_steps: int = 50
    window: int = 50
    min_ratio: float = 1.0e-3
    BOUNDS: ClassVar[Bounds] = {
        "reference_steps": (1, None), "window": (1, None), "min_ratio": (0, None)}

    def __post_init__(self) -> None:
        self._early: list[float] = []
        self._recent: deque[float] = deque(maxlen=int(self.window))
        self._reference: float | None = None  # the median of _early, once complete

    def update(self, grad_norm: float) -> dict[str, float] | None:
        if len(self._early) < self.reference_steps:
            self._early.append(grad_norm)
            return None
        self._recent.append(grad_norm)
        if len(self._recent) < self.window:
            return None
        if self._reference is None:
            self._reference = statistics.median(self._early)
        reference, recent = self._reference, statistics.median(self._recent)
        if reference > 0 and recent < self.min_ratio * reference:
            return {"early_median_norm": reference, "recent_median_norm": recent, "ratio": recent / reference}
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"early": list(self._early), "recent": list(self._recent)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._early = [float(v) for v in state.get("early", [])]
        self._recent = deque((float(v) for v in state.get("recent", [])), maxlen=int(self.window))
        self._reference = None


@dataclass
class ModeCollapse:
    """Every ``every_n_generator_steps`` (0: never) from ``start_generator_step`` on, with ``num_samples`` samples of
    the fixed noise and as many real ones: fires when the samples' mean pairwise distance is below
    ``min_diversity_ratio`` times the real data's, when (digit data, read by the shipped digit classifier) they
    cover fewer than ``min_class_coverage`` times as many predicted classes as the real samples, or when (data
    whose modes are known: the 2D toys' mixture components, the digits' classes) the effective number of modes
    they fall on drops below ``min_mode_retention`` times the most it reached at an earlier check of the run, or
    lies below ``min_modes_of_data`` times the real draw's own.

    The last is a drop, not a level: a healthy run on the 25-Gaussian grid may cover half of the modes at step
    500 and all of them later (sngan's preset: 8.6 effective modes at step 600, 20 at 3,000), so a level would
    call every slow start a collapse; a generator that spread over the modes and then lost them (dcgan's ring
    preset: 8.0 of 8 at step 600, 1.8 at 1,800, with a diversity ratio far above ``min_diversity_ratio``) is
    the failure the diversity ratio misses. The level floor, ``min_modes_of_data``, sits far below a slow start
    (0.15 x 25 = 3.75 on the grid, where sngan's preset had 9.0 at step 500): a generator that never spread over the
    modes (the minimax GAN on the grid, one effective mode from step 500 on) had no earlier best to drop from and
    was not reported (an audit). The floor fires at ``min_modes_of_data_checks`` checks in a row below it: a slow
    start climbs past it (lsgan's grid preset of 2026-12-07: 2.8 effective modes of 25 at step 500, 4.9 at 600, 6.6
    at 700, reported at step 500 by a floor of one check), a generator that never spread stays under it."""

    action: str = "warn"
    every_n_generator_steps: int = 100
    start_generator_step: int = 500
    num_samples: int = 256
    min_diversity_ratio: float = 0.1
    min_class_coverage: float | None = 0.5
    min_mode_retention: float | None = 0.5
    min_modes_of_data: float | None = 0.15
    min_modes_of_data_checks: int = 3
    # two samples at least: the mean pairwise distance of one sample is undefined (NaN)
    BOUNDS: ClassVar[Bounds] = {
        "every_n_generator_steps": (0, None), "start_generator_step": (0, None), "num_samples": (2, None),
        "min_diversity_ratio": (0, None), "min_class_coverage": (0, 1), "min_mode_retention": (0, 1),
        "min_modes_of_data": (0, 1), "min_modes_of_data_checks": (1, None)}

    def __post_init__(self) -> None:
        # the most effective modes at a check so far, and the generator step of that check
        self.best_effective_modes: tuple[float, int] | None = None
        self.checks_below_floor = 0  # the checks in a row whose effective modes were below the level floor

    def at_cadence(self, generator_step: int, previous: int | None = None) -> bool:
        """Whether ``generator_step`` crosses an interval of the cadence (from step 0: before
        ``start_generator_step`` only the samples' spread is checked there, as divergence has no early phase to wait
        out, unlike a collapse an early run recovers from). ``previous``: the generator step at the last check of
        the run (default: one step before)."""
        previous = generator_step - 1 if previous is None else previous
        return interval_crossed(generator_step, previous, self.every_n_generator_steps)

    def due(self, generator_step: int, previous: int | None = None) -> bool:
        """Whether the collapse check runs at ``generator_step``: at the cadence, from ``start_generator_step`` on."""
        return generator_step >= self.start_generator_step and self.at_cadence(generator_step, previous)

    def check(self, diversity_ratio: float, class_coverage: float | None = None, effective_modes: float | None = None,
              generator_step: int | None = None, data_effective_modes: float | None = None) -> dict[str, float] | None:
        """The evidence of a collapse at this check, or None. ``effective_modes`` (None: data without known
        modes) also becomes the best so far when it is; ``data_effective_modes``: the real draw's."""
        low_diversity = diversity_ratio < self.min_diversity_ratio
        few_classes = None not in (class_coverage, self.min_class_coverage) and class_coverage < self.min_class_coverage
        best = self.best_effective_modes
        dropped = None not in (effective_modes, best, self.min_mode_retention) and effective_modes < self.min_mode_retention * best[0]
        below_floor = (None not in (effective_modes, data_effective_modes, self.min_modes_of_data)
                       and effective_modes < self.min_modes_of_data * data_effective_modes)
        self.checks_below_floor = self.checks_below_floor + 1 if below_floor else 0
        too_few = below_floor and self.checks_below_floor >= self.min_modes_of_data_checks
        if effective_modes is not None and (best is None or effective_modes > best[0]):
            self.best_effective_modes = (effective_modes, generator_step)
        if not (low_diversity or few_classes or dropped or too_few):
            return None
        evidence = {"diversity_ratio": diversity_ratio, "min_diversity_ratio": self.min_diversity_ratio}
        if class_coverage is not None:
            evidence.update(class_coverage=class_coverage, min_class_coverage=self.min_class_coverage)
        if dropped:
            evidence.update(effective_modes=effective_modes, best_effective_modes=best[0],
                            best_at_generator_step=best[1], min_mode_retention=self.min_mode_retention)
        if too_few:
            evidence.update(effective_modes=effective_modes, data_effective_modes=data_effective_modes,
                            min_modes_of_data=self.min_modes_of_data, checks_below_floor=self.checks_below_floor)
        return evidence

    def state_dict(self) -> dict[str, Any]:
        # the checks are scheduled from the module's generator step; the best so far and the run of checks below the
        # floor carry over a resume
        return {"best_effective_modes": list(self.best_effective_modes) if self.best_effective_modes else None,
                "checks_below_floor": self.checks_below_floor}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        best = state.get("best_effective_modes")
        self.best_effective_modes = (float(best[0]), best[1]) if best else None
        self.checks_below_floor = int(state.get("checks_below_floor", 0))  # 0 in checkpoints before 2026-12-07


@dataclass
class Divergence:
    """Fires on any non-finite term (``train/d/*``, ``train/g/*``) or generator gradient norm, or, for
    raw-score losses, on a gap between the mean critic scores of real and fake samples larger than
    ``max_score_gap``, or (:meth:`check_spread`) on samples spread far wider than the data. The gap, not the
    scores: a critic's scores may drift together by any amount without harm (the losses only see differences),
    but a gap that runs away is a critic out of control."""

    action: str = "stop_and_keep_last_healthy"
    max_score_gap: float = 1.0e4
    max_diversity_ratio: float = 10.0
    BOUNDS: ClassVar[Bounds] = {"max_score_gap": (0, None), "max_diversity_ratio": (1, None)}

    def check_spread(self, diversity_ratio: float) -> dict[str, Any] | None:
        """At the mode-collapse check's cadence (from its first interval, before ``start_generator_step`` too):
        samples spread ``max_diversity_ratio`` times wider than the data, a generator whose output ran away while
        every loss stayed finite (a sigmoid loss has no score gap to watch): the audit's ``lr=10`` DCGAN on the grid
        reached 6,400-8,800 and was reported healthy. A tanh output cannot get there (its largest spread is 2.8x the
        digits'), so on images this never fires."""
        if diversity_ratio > self.max_diversity_ratio:
            return {"diversity_ratio": diversity_ratio, "max_diversity_ratio": self.max_diversity_ratio}
        return None

    def check(self, terms: Mapping[str, float], raw_scores: bool) -> dict[str, Any] | None:
        evidence = {name: value for name, value in terms.items() if not math.isfinite(value)}
        if evidence or not raw_scores:
            return evidence or None
        real, fake = terms.get("train/d/real_score"), terms.get("train/d/fake_score")
        if real is not None and fake is not None and abs(real - fake) > self.max_score_gap:
            return {"train/d/real_score": real, "train/d/fake_score": fake, "max_score_gap": self.max_score_gap}
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


@dataclass
class IgnoredLabels:
    """Conditional generators, at the mode-collapse check's cadence from ``start_generator_step`` on: fires when
    :func:`label_effect`, how far samples move when only their labels change over how far they move when only
    their latent codes change, is below ``min_label_effect``. A generator that never reads its labels (a network of
    one's own whose forward drops them, a wrapper that does not pass them on) trains, logs and scores like an
    unconditional one, and no loss shows it. It measures whether the labels matter, not whether each label draws its
    own class: conditional batch norm on the digits moved samples by 0.24-0.62 of a code change at steps 500-1,500
    while the digit classifier read the asked-for class in 15-25 % of them (``class_accuracy`` measures that).
    A generator that also ignores its codes (every sample alike) has no reference to compare with: that is mode
    collapse's to report, and this check gives no verdict (NaN). It runs inside the mode-collapse check, so from the
    later of the two start steps, at that check's cadence, and not at all with ``mode_collapse.every_n_generator_steps=0``;
    its threshold and start were set on the 10 digit classes. On Stacked MNIST's 1,000 classes conditional batch norm
    (each class's scales see a thousandth of the steps) stayed at 0.02-0.03 through 1,500 steps and is reported, as it
    should be: its samples barely move with their labels there (an embedding: 7-11)."""

    action: str = "warn"
    start_generator_step: int = 1000
    min_label_effect: float = 0.1
    BOUNDS: ClassVar[Bounds] = {"start_generator_step": (0, None), "min_label_effect": (0, None)}

    def due(self, generator_step: int) -> bool:
        return generator_step >= self.start_generator_step

    def check(self, effect: float) -> dict[str, float] | None:
        if math.isfinite(effect) and effect < self.min_label_effect:
            return {"label_effect": effect, "min_label_effect": self.min_label_effect}
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


DETECTORS = {
    "discriminator_overpowers": OverpoweredDiscriminator,
    "vanishing_generator_gradients": VanishingGeneratorGradients,
    "mode_collapse": ModeCollapse,
    "divergence": Divergence,
    "ignored_labels": IgnoredLabels,
}


def make_detector(kind: str, options: Mapping[str, Any] | None):
    cls = DETECTORS[kind]
    options = OmegaConf.to_container(options) if isinstance(options, DictConfig) else dict(options or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"callbacks.gan_health.{kind}: unknown option(s) {unknown}; expected some of {sorted(known)}")
    for f in fields(cls):
        if f.name in options and f.name in cls.BOUNDS:
            check_bounds(f"callbacks.gan_health.{kind}.{f.name}", options[f.name], *cls.BOUNDS[f.name],
                         integer=f.type == "int", nullable="None" in f.type)
    detector = cls(**options)
    if detector.action not in ACTIONS:
        raise ConfigError(f"callbacks.gan_health.{kind}.action={detector.action}: expected one of {', '.join(ACTIONS)}")
    return detector


def check_bounds(option: str, value: Any, minimum: float, maximum: float | None, integer: bool,
                 nullable: bool = False) -> None:
    """A detector's number: a window of 0 steps or one sample made a detector fire at once, never, or fail
    with a traceback in the middle of training (a deque of length 0, the distances of one sample)."""
    if value is None and nullable:
        return
    kind_ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    in_range = kind_ok and not isinstance(value, bool) and math.isfinite(value) and value >= minimum and \
        (maximum is None or value <= maximum)
    if not in_range:
        kind = "an integer" if integer else "a number"
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{option}={value}: expected {kind} {bounds}{' or null' if nullable else ''}")


def mean_pairwise_distance(samples: Tensor) -> float:
    """Mean Euclidean distance between the flattened samples (all pairs)."""
    return float(torch.pdist(samples.detach().flatten(1).float().cpu()).mean())


def label_effect(pl_module, num_codes: int, first: Tensor | None = None) -> float:
    """How much a conditional generator's samples depend on their labels: the mean distance between two samples of
    one latent code with two different labels, over the mean distance between two samples of one label with two
    different codes. 0 for a generator that ignores its labels; about 1 for one whose classes differ as much as its
    codes' samples do; NaN when the samples differ in neither (nothing to compare with) or there are fewer than 2
    classes.

    The first ``num_codes`` fixed codes, each drawn twice: code j with label y_j = j mod K and with y_j + 1 mod K
    (another label, same code); the second is also compared with code j + 1's first draw, whose label is the same
    y_j + 1 (same label, another code). The first draw is ``sample_fixed(num_codes)``'s own (its labels cycle the
    same way): ``first``, when the caller has drawn it already (the mode-collapse check), so one batch is new."""
    codes, classes = int(num_codes), pl_module.num_classes
    if classes is None or classes < 2:  # one class has no other label to move to
        return math.nan
    labels = torch.arange(codes, device=pl_module.fixed_noise.device) % classes
    first = (pl_module.sample_fixed(codes, labels) if first is None else first).flatten(1).float()
    second = pl_module.sample_fixed(codes, (labels + 1) % classes).flatten(1).float()
    relabelled = (second - first).norm(dim=1).mean()
    recoded = (second[:-1] - first[1:]).norm(dim=1).mean()
    return float(relabelled / recoded) if float(recoded) > 0 else math.nan


def _shown(evidence: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in evidence.items())


def describe(event: Mapping[str, Any]) -> str:
    """One line: what was detected, where, and what was kept."""
    line = f"{event['kind']} at generator step {event['generator_step']} ({_shown(event['evidence'])})"
    if event.get("action") == "stop_and_keep_last_healthy":
        kept = event.get("last_healthy_checkpoint")
        line += f"; last healthy checkpoint: {kept}" if kept else "; no checkpoint had been saved before it"
    return line


def stop_event(trainer) -> dict[str, Any] | None:
    """The detection that stopped this run's training (the health check's ``stop_event``), or None."""
    return next((c.stop_event for c in trainer.callbacks if isinstance(c, GANHealth) and c.stop_event), None)


# -------------------------------------------------------------------------------------------- callback
class GANHealth(pl.Callback):
    """Runs the five detectors; each kind fires at most once per run.

    A detection (``event``: kind, generator step, Lightning global step, evidence, action, remedy) is
    appended as one JSON line to ``events_path``, logged as ``health/<kind>`` = 1, shown once in the console
    with remedies, and raised as a W&B alert when W&B is active; the events are summarised when training
    ends (console and W&B run summary). ``health/diversity_ratio`` (and, on digit data,
    ``health/class_coverage``; on the 2D toys and the digits, ``health/effective_modes``; for a conditional model
    from ``ignored_labels.start_generator_step`` on, ``health/label_effect``) is logged at every mode-collapse check. ``stop_event`` is the detection that
    stopped training, if one did.

    ``sync_every_n_iterations``: how often the gathered values come to the host and are checked (see the
    module docstring); on CPU in one process G's loss is also read at every iteration.
    """

    def __init__(self, events_path: str | None = None, discriminator_overpowers: Mapping | None = None,
                 vanishing_generator_gradients: Mapping | None = None, mode_collapse: Mapping | None = None,
                 divergence: Mapping | None = None, sync_every_n_iterations: int = 10, ignored_labels: Mapping | None = None):
        if int(sync_every_n_iterations) < 1:
            raise ConfigError(f"callbacks.gan_health.sync_every_n_iterations must be a positive integer, got {sync_every_n_iterations}")
        self.events_path = Path(events_path) if events_path else None
        self.sync_every = int(sync_every_n_iterations)
        self.detectors = {kind: make_detector(kind, opts) for kind, opts in {
            "discriminator_overpowers": discriminator_overpowers, "vanishing_generator_gradients": vanishing_generator_gradients,
            "mode_collapse": mode_collapse, "divergence": divergence, "ignored_labels": ignored_labels}.items()}
        self.events: list[dict[str, Any]] = []
        self.stop_event: dict[str, Any] | None = None
        self._network_of = NetworkOfOptimizer()
        # one row per iteration, not yet checked: the values of _keys, then the norms of the generator's
        # gradients, per parameter (as they were: tensors on the device, or numbers)
        self._keys: tuple[str, ...] = ()
        self._terms_seen = 0
        self._rows: list[tuple[list, Sequence[Tensor]]] = []
        self._row_steps: list[tuple[int, int, bool]] = []  # (generator step, global step, has a G grad norm) per row
        self._restored_rows: list[tuple[dict[str, float], tuple[int, int, bool]]] = []  # unchecked rows of a checkpoint
        self._generator_grad_norms: Sequence[Tensor] = ()
        self._generator_parameters: list[Tensor] = []
        self._skipped_steps_possible = False
        self._raw_scores = False
        self._sync_every_now = self.sync_every
        self._watch_generator_loss = False  # on CPU in one process: read G's loss every iteration (module docstring)
        self._seen_generator_steps: int | None = None
        self._reads_digits = False
        self._real: Tensor | None = None
        self._real_classes: tuple[Tensor, int] | None = None  # (the real draw, distinct classes read in it)
        self._real_diversity: tuple[Tensor, float] | None = None  # (the real draw, its mean pairwise distance)
        self._real_modes: tuple[Tensor, float | None] | None = None  # (the real draw, its effective modes)
        self._spread_checked_at: int | None = None  # the generator step of the last spread check
        self._classifier = None
        self._last_classes: tuple[Tensor, Tensor] | None = None  # (images, the classes read in them)
        self._stop_requested = False
        #: the run's per-data preset when it sets optimizer values (see remedy), read when training starts
        self._optimizer_preset: str | None = None

    @property
    def fired(self) -> set[str]:
        return {event["kind"] for event in self.events}

    def setup(self, trainer, pl_module, stage: str) -> None:
        """Before training: more mode-collapse samples than the module's fixed noise codes compared that many
        fakes with ``num_samples`` reals."""
        from gan.callbacks.sample_grid import fixed_noise_codes

        collapse, codes = self.detectors["mode_collapse"], fixed_noise_codes(pl_module)
        if stage == "fit" and codes is not None and collapse.every_n_generator_steps and collapse.num_samples > codes:
            raise ConfigError(f"callbacks.gan_health.mode_collapse.num_samples={collapse.num_samples}: expected at most "
                              f"{codes}, as many as the module's fixed noise codes (+model.num_fixed_samples={codes} sets "
                              "their number)")

    # ----------------------------------------------------------------------------------- observations
    def on_train_start(self, trainer, pl_module) -> None:
        self._seen_generator_steps = pl_module.generator_steps
        self._raw_scores = not pl_module.loss.logits_are_probabilities
        self._skipped_steps_possible = scaler_skips_nonfinite_steps(trainer)
        self._sync_every_now = self.sync_every
        self._generator_parameters = []  # taken from G's optimizer at its first step
        # on CPU reading a value costs no sync: one read per iteration stops a NaN run at once. One process only:
        # a rank's own loss may turn before the others' (they follow an iteration later, through the averaged
        # gradients), and a check the other ranks do not make would wait for them in its reduce forever
        self._watch_generator_loss = pl_module.device.type == "cpu" and trainer.world_size == 1
        overpowers = self.detectors["discriminator_overpowers"]
        overpowers.loss_floor, overpowers.fake_score_floor = achievable_minimum(getattr(pl_module, "label_targets", None))
        from gan.metrics.registry import holds_digits

        # the shipped classifier reads digits; on other 1x28x28 data (Fashion-MNIST) its classes mean nothing
        self._reads_digits = trainer.datamodule is not None and holds_digits(trainer.datamodule)
        self._optimizer_preset = running_preset_setting("optimizer")

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self._network_of(optimizer, pl_module) != "g":
            return  # a NaN in D's update shows in the G loss of the same iteration: D's norms are not needed
        if not self._generator_parameters:
            self._generator_parameters = [p for group in optimizer.param_groups for p in group["params"]]
        grads = [p.grad for p in self._generator_parameters if p.grad is not None]
        # one kernel; the norms stay on the device and are combined into the total at the next check, where all
        # rows are stacked at once (the total here took two more kernels every iteration: ~25 us of ~1.7 ms
        # for a tiny network on CPU)
        self._generator_grad_norms = torch._foreach_norm(grads) if grads else ()

    def on_gan_iteration_end(self, trainer, pl_module) -> None:
        """After every GAN iteration (called by the module: a training batch may hold several)."""
        terms = pl_module.last_terms
        if len(terms) != self._terms_seen:  # first iteration, or a term appeared (terms are merged, never removed)
            self.check_now(trainer, pl_module)  # the rows of the old layout first
            self._terms_seen = len(terms)
            self._keys = tuple(name for name in terms if name.startswith(("train/d/", "train/g/")))
        norms = self._generator_grad_norms
        self._rows.append(([terms[name] for name in self._keys], norms))  # kept as they are: no kernel, no sync
        self._row_steps.append((pl_module.generator_steps, trainer.global_step, bool(norms)))
        self._generator_grad_norms = ()
        step = pl_module.generator_steps
        collapse = self.detectors["mode_collapse"]
        at_cadence = collapse.at_cadence(step, self._seen_generator_steps)  # one test per iteration for both checks
        collapse_due = at_cadence and step >= collapse.start_generator_step
        diverged = self._watch_generator_loss and not math.isfinite(terms.get(GENERATOR_LOSS, 0.0))
        if collapse_due or diverged or len(self._rows) >= self._sync_every_now:
            self.check_now(trainer, pl_module)
        if collapse_due:
            self._check_mode_collapse(trainer, pl_module, step)
            self._stop_if_requested(trainer)
        elif at_cadence:  # before the collapse check starts: the spread alone
            self._check_spread(trainer, pl_module, step, self._samples_and_diversity(trainer, pl_module)[2])
            self._stop_if_requested(trainer)
        self._seen_generator_steps = step

    def check_now(self, trainer, pl_module) -> None:
        """Bring the gathered rows to the host (one transfer; averaged over DDP ranks) and run the
        per-iteration detectors over them. Every rank must call it at the same point (DDP reduces)."""
        rows = self._restored_rows + self._host_rows(trainer, pl_module.device)
        self._restored_rows, self._rows, self._row_steps = [], [], []
        for terms, steps in rows:
            self._check_iteration(trainer, pl_module, terms, *steps)
        self._stop_if_requested(trainer)

    def _host_rows(self, trainer, device: torch.device) -> list[tuple[dict[str, float], tuple[int, int, bool]]]:
        """The kept rows as numbers: (terms and the generator's gradient norm by name, steps), in one stack
        and one transfer (averaged over DDP ranks when ``trainer`` has several)."""
        if not self._rows:
            return []
        flat = [value for values, norms in self._rows for value in (*values, *norms)]
        try:
            stacked = torch.stack(flat).float()
        except TypeError:  # numbers among the terms: tensors on the module's device
            stacked = torch.stack([torch.as_tensor(v, dtype=torch.float32, device=device) for v in flat])
        if trainer is not None and trainer.world_size > 1:
            stacked = trainer.strategy.reduce(stacked, reduce_op="mean")
        numbers, rows, start = stacked.tolist(), [], 0
        for (values, norms), steps in zip(self._rows, self._row_steps):
            middle, end = start + len(values), start + len(values) + len(norms)
            terms = dict(zip(self._keys, numbers[start:middle]))
            terms[GENERATOR_GRAD_NORM] = combined_norm(numbers[middle:end], 2.0)  # the total, from the parameters' norms
            rows.append((terms, steps))
            start = end
        return rows

    def _check_iteration(self, trainer, pl_module, terms: dict[str, float], generator_step: int, global_step: int,
                         has_grad_norm: bool) -> None:
        norm = terms.pop(GENERATOR_GRAD_NORM)
        # a GradScaler skips a step whose (scaled) gradients overflowed, and lowers its scale: by design,
        # every ~2,000 clean steps; such a step changed nothing, so its norm is no evidence of anything
        skipped = not math.isfinite(norm) and self._skipped_steps_possible
        checked = dict(terms, **({GENERATOR_GRAD_NORM: norm} if has_grad_norm and not skipped else {}))
        evidence = self.detectors["divergence"].check(checked, self._raw_scores)
        if evidence:
            self._fire(trainer, pl_module, "divergence", evidence, generator_step, global_step)
        # the adversarial loss alone when penalties or a class loss add to D's (its floor is the loss's own)
        d_loss = terms.get("train/d/adversarial", terms.get("train/d/loss"))
        if not self._raw_scores and d_loss is not None and "train/d/fake_score" in terms:
            evidence = self.detectors["discriminator_overpowers"].update(d_loss, terms["train/d/fake_score"])
            if evidence:
                self._fire(trainer, pl_module, "discriminator_overpowers", evidence, generator_step, global_step)
        if has_grad_norm and math.isfinite(norm):
            evidence = self.detectors["vanishing_generator_gradients"].update(norm)
            if evidence:
                self._fire(trainer, pl_module, "vanishing_generator_gradients", evidence, generator_step, global_step)

    def _samples_and_diversity(self, trainer, pl_module) -> tuple[Tensor, Tensor, float]:
        """Samples of the fixed noise (the EMA copy once updated), the fixed real draw, and the samples' mean
        pairwise distance over the real draw's."""
        collapse = self.detectors["mode_collapse"]
        samples = pl_module.sample_fixed(collapse.num_samples)
        real = self._real_samples(trainer, collapse.num_samples)
        if self._real_diversity is None or self._real_diversity[0] is not real:  # the fixed draw: measure it once
            self._real_diversity = (real, mean_pairwise_distance(real))
        if self._real_diversity[1] == 0:  # data of one repeated sample has no spread to compare with: no verdict
            return samples, real, math.nan
        return samples, real, mean_pairwise_distance(samples) / self._real_diversity[1]

    def _check_mode_collapse(self, trainer, pl_module, step: int) -> None:
        collapse = self.detectors["mode_collapse"]
        samples, real, ratio = self._samples_and_diversity(trainer, pl_module)
        signals = {"health/diversity_ratio": ratio}
        coverage = self.class_coverage(samples, real) if collapse.min_class_coverage is not None else None
        if coverage is not None:
            signals["health/class_coverage"] = coverage
        wanted = collapse.min_mode_retention is not None or collapse.min_modes_of_data is not None
        effective = self.effective_modes(trainer, samples) if wanted else None
        of_data = None
        if effective is not None:
            signals["health/effective_modes"] = effective
            if self._real_modes is None or self._real_modes[0] is not real:  # the fixed draw: read it once
                self._real_modes = (real, self.effective_modes(trainer, real))
            of_data = self._real_modes[1]
        ignored = self.detectors["ignored_labels"]
        conditional = (getattr(pl_module, "num_classes", None) or 0) >= 2
        if conditional and ignored.due(step):
            signals["health/label_effect"] = label_effect(pl_module, collapse.num_samples, first=samples)
        log_scalars(trainer, signals, step)
        evidence = collapse.check(ratio, coverage, effective, step, of_data)
        if evidence:
            self._fire(trainer, pl_module, "mode_collapse", evidence, step, trainer.global_step)
        evidence = ignored.check(signals["health/label_effect"]) if "health/label_effect" in signals else None
        if evidence:
            self._fire(trainer, pl_module, "ignored_labels", evidence, step, trainer.global_step)
        self._check_spread(trainer, pl_module, step, ratio)

    def _check_spread(self, trainer, pl_module, step: int, diversity_ratio: float) -> None:
        self._spread_checked_at = step
        evidence = self.detectors["divergence"].check_spread(diversity_ratio)
        if evidence:
            self._fire(trainer, pl_module, "divergence", evidence, step, trainer.global_step)

    def _stop_if_requested(self, trainer) -> None:
        if any(d.action != "warn" for d in self.detectors.values()):
            # every rank must agree, or one would wait forever in the next collective
            if trainer.strategy.reduce_boolean_decision(self._stop_requested, all=False):
                trainer.should_stop = True

    def _real_samples(self, trainer, n: int) -> Tensor:
        """The same real draw at every check, so the reference does not move."""
        if self._real is None or len(self._real) != n:
            self._real = trainer.datamodule.real_samples(n, generator=torch.Generator().manual_seed(0))
        return self._real

    def class_coverage(self, samples: Tensor, real: Tensor) -> float | None:
        """Distinct classes the digit classifier reads in ``samples`` over those it reads in ``real``; None
        for data that is not digits (the classifier reads 1x28x28 MNIST digits only)."""
        if not self._reads_digit_images(samples):
            return None
        if self._real_classes is None or self._real_classes[0] is not real:  # the fixed draw: read it once
            self._real_classes = (real, self._digit_classes(real).unique().numel())
        return self._digit_classes(samples).unique().numel() / self._real_classes[1]

    def effective_modes(self, trainer, samples: Tensor) -> float | None:
        """The effective number of modes ``samples`` fall on (:func:`~gan.metrics.modes.effective_count` of their
        histogram), on data whose modes are known: a 2D Gaussian mixture's components (each sample's nearest
        mean) or the digits' classes (read by the digit classifier); None for other data."""
        mixture = getattr(trainer.datamodule, "modes", None) if trainer is not None else None
        if isinstance(mixture, Tensor) and samples.dim() == 2 and samples.size(1) == mixture.size(1):
            modes = nearest_modes(samples, mixture)[1]
        elif self._reads_digit_images(samples):
            modes = self._digit_classes(samples)
        else:
            return None
        return effective_count(torch.bincount(modes))

    def _reads_digit_images(self, images: Tensor) -> bool:
        from gan.metrics.digit_classifier import INPUT_SHAPE

        return self._reads_digits and tuple(images.shape[1:]) == tuple(INPUT_SHAPE)

    def _digit_classes(self, images: Tensor) -> Tensor:
        """The classes the digit classifier reads in ``images`` (the last reading is kept: a check reads the same
        samples for the class coverage and the effective modes)."""
        if self._last_classes is not None and self._last_classes[0] is images:
            return self._last_classes[1]
        from gan.metrics.features import DigitFeatures

        if self._classifier is None:
            self._classifier = DigitFeatures()
        classes = self._classifier(images.cpu())["logits"].argmax(dim=1)
        self._last_classes = (images, classes)
        return classes

    # ------------------------------------------------------------------------------------------ events
    def _fire(self, trainer, pl_module, kind: str, evidence: dict[str, Any], generator_step: int, global_step: int) -> None:
        if kind in self.fired:
            return
        action = self.detectors[kind].action
        event = {"kind": kind, "generator_step": generator_step, "global_step": global_step,
                 "evidence": evidence, "action": action, "remedy": remedy(kind, pl_module, self._optimizer_preset)}
        if action == "stop_and_keep_last_healthy":
            event["last_healthy_checkpoint"] = self._keep_last_healthy(trainer)
        self.events.append(event)
        if action != "warn":
            self._stop_requested = True
            self.stop_event = self.stop_event or event
        log_scalars(trainer, {f"health/{kind}": 1.0}, generator_step)
        if not trainer.is_global_zero:
            return
        if self.events_path is not None:
            self.events_path.parent.mkdir(parents=True, exist_ok=True)
            with self.events_path.open("a") as handle:
                handle.write(json.dumps(json_safe(event)) + "\n")
        kept = event.get("last_healthy_checkpoint")
        consequence = {"warn": "training continues", "stop": "stopping training",
                       "stop_and_keep_last_healthy": "stopping training; " + (f"last healthy checkpoint: {kept}" if kept else
                                                                              "no checkpoint had been saved before it")}[action]
        log.warning("GAN health: %s at generator step %d (%s); %s. Try: %s.", kind, generator_step, _shown(evidence), consequence, event["remedy"])
        alert(trainer.loggers, f"GAN health: {kind}", f"Generator step {generator_step}: {_shown(evidence)}. Try: {event['remedy']}.")

    def _keep_last_healthy(self, trainer) -> str | None:
        """Copy the newest checkpoint on disk to ``last_healthy.ckpt``, which later saves never overwrite.
        All were saved before the iteration that failed: rows are checked before every checkpoint save,
        and saves refuse non-finite weights."""
        saved = [Path(path) for callback in trainer.checkpoint_callbacks
                 for path in (getattr(callback, "last_model_path", ""), getattr(callback, "best_model_path", ""))
                 if path and Path(path).name != HEALTHY_CHECKPOINT_NAME and Path(path).is_file()]
        if not saved:  # the detection's own line says so ("no checkpoint had been saved before it"); a line here came
            return None  # before the one it explained (a DDP audit)
        newest = max(saved, key=lambda path: path.stat().st_mtime)
        target = newest.with_name(HEALTHY_CHECKPOINT_NAME)
        if trainer.is_global_zero:
            shutil.copyfile(newest, target)
        return str(target)

    def check_weights(self, trainer, pl_module, non_finite: list[str] | None = None) -> None:
        """Weights or buffers holding NaN/Inf are divergence even when the losses stayed finite: a batch-norm running
        variance that overflowed leaves training (on batch statistics) finite and every sample drawn in eval mode
        NaN; such a run ended "no problems detected" with status 0 and no checkpoint (an audit, lr=1e12). Checked
        before every checkpoint save and at the end (one device sync each), not at every check. ``non_finite``: the
        names a caller already found (:func:`non_finite_weights`), so the tensors are not scanned twice."""
        if "divergence" in self.fired:
            return
        bad = non_finite_weights(pl_module.state_dict()) if non_finite is None else non_finite
        if bad:
            self._fire(trainer, pl_module, "divergence", {"non_finite_tensor": bad[0], "non_finite_tensors": len(bad)},
                       pl_module.generator_steps, trainer.global_step)
        elif self._spread_checked_at != pl_module.generator_steps and getattr(trainer, "datamodule", None) is not None:
            # the samples' spread too, which the cadence checks only every 100 steps: a checkpoint saved between
            # two checks was kept as "last healthy" with samples 67 times wider than the data (an audit)
            self._check_spread(trainer, pl_module, pl_module.generator_steps, self._samples_and_diversity(trainer, pl_module)[2])
        # now, not at the next check: a divergence found at a checkpoint save (a batch end) trained one more batch
        # before stopping, up to 10 iterations (an audit). Every rank calls this at the same save (DDP reduces).
        self._stop_if_requested(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self.check_now(trainer, pl_module)  # the last iterations' rows (checkpoint callbacks run after this)
        self.check_weights(trainer, pl_module)
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
        """Fired kinds, the detectors' windows, and rows not yet checked (normally none: checkpoint saves
        check them first), so a resumed run continues every window where it was."""
        pending = [(terms, list(steps)) for terms, steps in self._restored_rows + self._host_rows(None, torch.device("cpu"))]
        return {"events": json_safe(self.events), "detectors": {kind: d.state_dict() for kind, d in self.detectors.items()},
                "pending": json_safe(pending)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.events = list(state_dict.get("events", []))
        for kind, state in state_dict.get("detectors", {}).items():
            if kind in self.detectors:
                self.detectors[kind].load_state_dict(state)
        self._restored_rows = [({k: float(v) for k, v in terms.items()}, tuple(steps)) for terms, steps in state_dict.get("pending", [])]
