"""Stabilization tricks that act on what the discriminator sees or on the generator's objective.

All are pure functions (or small configured callables) on tensors; randomness uses torch's global RNG, so a
seeded run is reproducible, and schedules take the step as an argument, so the module derives them from its
own checkpointed counters and a resumed run continues exactly.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from gan.utils.errors import ConfigError

INSTANCE_NOISE_SCHEDULES = ("linear", "exponential")
#: an exponential schedule reaches this fraction of its start value at the end of the annealing
EXPONENTIAL_FINAL_FRACTION = 0.01


class LabelTargets:
    """The per-sample targets (1 = real) the discriminator loss sees.

    - ``real``: one-sided label smoothing (Salimans et al. 2016, section 3.4): real target 0.9 instead of 1;
      fake targets are never smoothed.
    - ``real_range``: noisy real labels, uniform in [lo, hi] per sample (replaces ``real``).
    - ``flip_prob``: each target is swapped with that probability (a flipped real gets 0, a flipped fake
      gets the real target).
    """

    def __init__(self, real: float = 1.0, real_range: Sequence[float] | None = None, flip_prob: float = 0.0):
        self.real, self.flip_prob = float(real), float(flip_prob)
        self.real_range = None if real_range is None else tuple(float(v) for v in real_range)
        if not 0.0 < self.real <= 1.0:
            raise ConfigError(f"model.real_label must be in (0, 1], got {real}")
        if self.real_range is not None and not (len(self.real_range) == 2 and 0.0 <= self.real_range[0] <= self.real_range[1] <= 1.0):
            raise ConfigError(f"model.real_label_range must be [lo, hi] with 0 <= lo <= hi <= 1, got {list(real_range)}")
        if not 0.0 <= self.flip_prob < 0.5:
            raise ConfigError(f"model.label_flip_prob must be in [0, 0.5), got {flip_prob}")

    @property
    def active(self) -> bool:
        return self.real != 1.0 or self.real_range is not None or self.flip_prob > 0.0

    @property
    def options(self) -> str:
        """The options that make the targets differ from 1 and 0, as overrides (``model.real_label=0.9``), for messages."""
        options = [f"model.real_label={self.real:g}"] if self.real != 1.0 and self.real_range is None else []
        if self.real_range is not None:
            options.append(f"model.real_label_range=[{self.real_range[0]:g}, {self.real_range[1]:g}]")
        if self.flip_prob > 0.0:
            options.append(f"model.label_flip_prob={self.flip_prob:g}")
        return " and ".join(options)

    def __call__(self, n: int, device=None) -> dict[str, Tensor]:
        """``{"real_targets": (n,), "fake_targets": (n,)}``, the keyword arguments of a discriminator loss."""
        if self.real_range is None:
            real = torch.full((n,), self.real, device=device)
        else:
            lo, hi = self.real_range
            real = lo + (hi - lo) * torch.rand(n, device=device)
        fake = torch.zeros(n, device=device)
        if self.flip_prob > 0.0:
            flip_real = torch.rand(n, device=device) < self.flip_prob
            flip_fake = torch.rand(n, device=device) < self.flip_prob
            real, fake = torch.where(flip_real, torch.zeros_like(real), real), torch.where(flip_fake, real, fake)
        return {"real_targets": real, "fake_targets": fake}

    def __repr__(self) -> str:
        return f"LabelTargets(real={self.real}, real_range={self.real_range}, flip_prob={self.flip_prob})"


def instance_noise_std(step: int, start: float, anneal_steps: int, schedule: str = "linear") -> float:
    """Sønderby et al. 2016 / Arjovsky & Bottou 2017: the std of the Gaussian noise added to every
    discriminator input at generator step ``step``: ``start`` at 0, annealed to 0 at ``anneal_steps``.

    ``linear``: start * (1 - step / anneal_steps). ``exponential``: start * 0.01 ** (step / anneal_steps)
    (1% of the start at the end), then 0.
    """
    if step >= anneal_steps or start == 0.0:
        return 0.0
    progress = step / anneal_steps
    if schedule == "linear":
        return start * (1.0 - progress)
    if schedule == "exponential":
        return start * math.pow(EXPONENTIAL_FINAL_FRACTION, progress)
    raise ValueError(f"unknown instance noise schedule {schedule!r}; expected one of {list(INSTANCE_NOISE_SCHEDULES)}")


def add_instance_noise(x: Tensor, std: float) -> Tensor:
    return x + std * torch.randn_like(x) if std > 0 else x


class InstanceNoise:
    """Instance noise with its schedule: ``std`` at generator step 0, annealed to 0 over ``steps`` generator
    steps (see :func:`instance_noise_std`). ``std=0`` is off."""

    def __init__(self, std: float = 0.0, steps: int = 1, schedule: str = "linear"):
        if float(std) < 0 or int(steps) < 1 or schedule not in INSTANCE_NOISE_SCHEDULES:
            raise ConfigError(f"instance noise needs model.instance_noise_std >= 0, model.instance_noise_steps >= 1 and "
                              f"model.instance_noise_schedule in {list(INSTANCE_NOISE_SCHEDULES)}; got std={std}, steps={steps}, "
                              f"schedule={schedule!r}")
        self.start, self.steps, self.schedule = float(std), int(steps), schedule
        #: whether any noise is added (std > 0); callers skip the call when off (a few Python calls per D pass)
        self.active = self.start > 0

    def std(self, generator_step: int) -> float:
        return instance_noise_std(generator_step, self.start, self.steps, self.schedule)

    def __call__(self, x: Tensor, generator_step: int) -> Tensor:
        return add_instance_noise(x, self.std(generator_step))


def feature_matching_loss(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """Salimans et al. 2016, section 3.1: ||E f(x) - E f(G(z))||^2 on a discriminator layer f, as the mean
    over features of the squared difference of the batch means (real features carry no gradient)."""
    return F.mse_loss(fake_features.flatten(1).mean(dim=0), real_features.detach().flatten(1).mean(dim=0))


def auxiliary_classification_loss(class_logits: Tensor, labels: Tensor) -> Tensor:
    """Odena et al. 2017 (AC-GAN), eq. 2: the cross-entropy of the auxiliary classifier, -E[log P(C = c | X)]."""
    return F.cross_entropy(class_logits, labels)
