"""Values that change over training, as pure functions of the generator step.

Two kinds of small objects, both chosen by ``_target_`` in ``model.schedules``:

- a *curve* maps a generator step to a number (:class:`Constant`, :class:`Cosine`, :class:`Linear`);
- a *setting* applies a curve's value to one place of a run before each iteration: an optimizer
  hyperparameter (:class:`OptimizerSetting`: ``lr``, ``beta1``, ``beta2``, ...), an attribute of a named
  penalty (:class:`PenaltySetting`: ``gamma``, ``weight``), or the EMA half-life (:class:`EMAHalfLife`).

Because every value is recomputed from the checkpointed generator-step counter, a resumed run continues
the schedules exactly, with no scheduler state to save.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch

from gan.utils.config import is_number
from gan.utils.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from gan.module import GANModule


# ---------------------------------------------------------------------------------------------- curves
class Curve:
    def __call__(self, step: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def bounds(self) -> tuple[float, float]:  # pragma: no cover - abstract
        """The lowest and the highest value the curve takes at any step."""
        raise NotImplementedError

    def beyond(self, run_steps: int) -> list[str]:
        """The parts of the curve a run of ``run_steps`` generator steps never reaches, in words (none here)."""
        return []


class Constant(Curve):
    def __init__(self, value: float):
        self.value = float(value)

    def __call__(self, step: int) -> float:
        return self.value

    def bounds(self) -> tuple[float, float]:
        return self.value, self.value

    def __repr__(self) -> str:
        return f"Constant({self.value})"


class Ramp(Curve):
    """From ``start`` at step 0 to ``end`` at step ``steps``, then held at ``end``; subclasses give the shape.

    ``then`` (a curve) takes over from generator step ``then_from`` on, counting steps from there: a
    cool-down after a burn-in is ``Cosine(5e-4, 3e-4, 18000, then=Cosine(3e-4, 3e-5, 8000), then_from=22000)``.
    (A second curve on the ramp rather than a list of curves, so a preset can add it to a variant's ramp:
    Hydra merges a preset's keys into the variant's, it cannot replace the node.)"""

    def __init__(self, start: float, end: float, steps: int, then: Curve | float | None = None,
                 then_from: int | None = None):
        if int(steps) < 1:
            raise ConfigError(f"{type(self).__name__} schedule needs steps >= 1 (generator steps), got {steps}")
        self.start, self.end, self.steps = float(start), float(end), int(steps)
        if (then is None) != (then_from is None):
            raise ConfigError(f"{type(self).__name__} schedule: give both then (a curve) and then_from (the generator "
                              f"step it starts at), or neither; got then={then!r}, then_from={then_from!r}")
        self.then = None if then is None else as_curve(then)
        self.then_from = None if then_from is None else int(then_from)
        if self.then_from is not None and self.then_from < self.steps:
            raise ConfigError(f"{type(self).__name__} schedule: then_from={self.then_from} starts the next curve before "
                              f"the ramp's {self.steps} steps are over (expected then_from >= steps)")

    def __call__(self, step: int) -> float:
        if self.then is not None and step >= self.then_from:
            return self.then(step - self.then_from)
        if step >= self.steps:
            return self.end
        return self.start + self.shape(max(step, 0) / self.steps) * (self.end - self.start)

    def shape(self, progress: float) -> float:  # pragma: no cover - abstract
        """The fraction of the way from start to end at ``progress`` in [0, 1) (monotone, from 0 towards 1)."""
        raise NotImplementedError

    def beyond(self, run_steps: int) -> list[str]:
        """A ramp longer than the run (its last applied value, at step ``run_steps - 1``, is short of ``end``) and
        a next curve that starts after the run's last step. A ramp exactly as long as the run (``burn_in:
        ${generator_steps}``) ends within a step of ``end`` and is not reported."""
        parts = []
        if self.steps > run_steps:
            parts.append(f"the ramp from {self.start:g} to {self.end:g} takes {self.steps} generator steps, so the run "
                         f"ends at {self(run_steps - 1):.3g}")
        if self.then is not None:
            if self.then_from >= run_steps:
                parts.append(f"its next curve (then_from={self.then_from}) starts after the run's last step and never acts")
            else:
                parts.extend(f"its next curve, from step {self.then_from}: {part}"
                             for part in self.then.beyond(run_steps - self.then_from))
        return parts

    def bounds(self) -> tuple[float, float]:
        low, high = min(self.start, self.end), max(self.start, self.end)
        if self.then is not None:
            then_low, then_high = self.then.bounds()
            low, high = min(low, then_low), max(high, then_high)
        return low, high

    def __repr__(self) -> str:
        then = "" if self.then is None else f", then={self.then!r}, then_from={self.then_from}"
        return f"{type(self).__name__}(start={self.start}, end={self.end}, steps={self.steps}{then})"


class Cosine(Ramp):
    """Half a cosine from ``start`` to ``end`` (R3GAN's ``cosine_decay_with_warmup`` without warm-up):
    start + (1 - (1 + cos(pi t / T)) / 2) (end - start), then ``end``."""

    def shape(self, progress: float) -> float:
        return 1.0 - 0.5 * (1.0 + math.cos(math.pi * progress))


class Linear(Ramp):
    def shape(self, progress: float) -> float:
        return progress


def as_curve(value: Curve | float | int) -> Curve:
    """A number is a constant curve, so ``model.schedules.gamma.value=0.1`` works on the command line."""
    return value if isinstance(value, Curve) else Constant(float(value))


def parts_beyond_the_run(schedules: dict[str, "Setting"], run_steps: int) -> list[str]:
    """One warning per schedule with a part that a run of ``run_steps`` generator steps never reaches (found by
    an audit: a preset's 18,000-step burn-in and its cool-down from step 22,000 in a 10,000-step run train with
    a learning rate that never falls to the preset's values, without a word)."""
    return [f"model.schedules.{name}: {'; '.join(parts)} (generator_steps={run_steps}); scale the schedule's steps "
            "with generator_steps (model=r3gan and its presets: burn_in, then_from)"
            for name, setting in schedules.items() if (parts := setting.value.beyond(run_steps))]


# -------------------------------------------------------------------------------------------- settings
class Setting:
    """Applies ``value(generator_step)`` somewhere in the module; returns the value it applied."""

    #: what it sets, read by the config checks that warn of an option a schedule overwrites (gan/utils/config.py):
    #: "optimizer" (an optimizer's hyperparameter), "penalty" (a penalty's attribute), "ema_decay", or None
    sets: str | None = None

    def __init__(self, value: Curve | float):
        self.value = as_curve(value)
        self.name: str | None = None  # its key under model.schedules, set by the module that applies it

    def check(self, module: "GANModule", name: str) -> None:
        """Called once when the module is built, so a misnamed target fails before training."""

    def check_values(self, name: str, what: str, minimum: float, maximum: float | None = None) -> None:
        """The curve stays within [minimum, maximum) (maximum excluded) at every step: a learning rate that a
        schedule takes below 0 turns training into ascent, and nothing after the start would say so."""
        low, high = self.value.bounds()
        if low < minimum or (maximum is not None and high >= maximum):
            reached = low if low < minimum else high
            expected = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum})"
            raise ConfigError(f"model.schedules.{name}: {self.value!r} reaches {reached}; expected {what} {expected} "
                              "at every step")

    def apply(self, module: "GANModule", generator_step: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"


def is_settable_number(value: Any) -> bool:
    """A value a schedule can set: a number (not a bool, which flags like ``fused`` hold) or a one-element tensor."""
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and value.is_floating_point()
    return is_number(value)


NETWORKS = ("generator", "discriminator")
#: optimizer hyperparameters that torch's optimizers refuse below 0 when built (but not when a schedule sets them)
NON_NEGATIVE_HYPERPARAMETERS = ("lr", "weight_decay", "momentum", "eps", "alpha")


class OptimizerSetting(Setting):
    """An optimizer hyperparameter of the listed networks' optimizers: ``lr``, ``weight_decay``, ...; and
    ``beta1`` / ``beta2`` for Adam-style ``betas`` (R3GAN ramps beta2 from 0.9 to 0.99)."""

    sets = "optimizer"

    def __init__(self, hyperparameter: str, value: Curve | float, networks: Sequence[str] = NETWORKS):
        super().__init__(value)
        self.hyperparameter = str(hyperparameter)
        self.networks = tuple(networks)
        unknown = sorted(set(self.networks) - set(NETWORKS))
        if unknown or not self.networks:
            raise ConfigError(f"OptimizerSetting networks must be some of {list(NETWORKS)}, got {list(networks)}")

    def check(self, module, name):
        if self.hyperparameter in ("beta1", "beta2"):
            self.check_values(name, self.hyperparameter, 0.0, 1.0)
        elif self.hyperparameter in NON_NEGATIVE_HYPERPARAMETERS:
            self.check_values(name, self.hyperparameter, 0.0)
        # the names against the optimizers this run builds, now: a misnamed one failed at the first step, after the
        # loggers had started, on the progress bar's line (an audit), and betas=0.5 or fused=1 as a traceback or not at all
        preview = getattr(module, "optimizer_preview", None)
        for network in self.networks if preview is not None else ():
            optimizer = preview(network)
            if optimizer is not None:
                self.check_fits(optimizer.defaults, network, type(optimizer).__name__, f"model.schedules.{name}")

    def check_fits(self, hyperparameters: Mapping[str, Any], network: str, optimizer: str, key: str) -> None:
        """The hyperparameter is one of ``optimizer``'s numbers (``beta1`` / ``beta2``: an element of its betas)."""
        if self.hyperparameter in ("beta1", "beta2"):
            if "betas" not in hyperparameters:  # it named neither the option nor the way out (an audit)
                raise ConfigError(f"{key} sets {self.hyperparameter} of the {network} optimizer, but {optimizer} has no "
                                  f"betas; expected an optimizer with betas (Adam), or {key}=null")
            return
        if self.hyperparameter not in hyperparameters or not is_settable_number(hyperparameters[self.hyperparameter]):
            numbers = [k for k, v in hyperparameters.items() if is_settable_number(v)] + \
                (["beta1", "beta2"] if "betas" in hyperparameters else [])
            what = ("has no such hyperparameter" if self.hyperparameter not in hyperparameters else
                    f"has it as {hyperparameters[self.hyperparameter]!r}, not a number")
            raise ConfigError(f"{key}: hyperparameter={self.hyperparameter}: the {network} optimizer ({optimizer}) {what}; "
                              f"expected one of {sorted(numbers)}")

    def apply(self, module, generator_step):
        value = self.value(generator_step)
        for network in self.networks:
            optimizer = module.optimizer_of(network)
            for group in optimizer.param_groups:
                # checked when the module was built; raised here for an optimizer built otherwise (a subclass's)
                if ("betas" if self.hyperparameter in ("beta1", "beta2") else self.hyperparameter) not in group:
                    self.check_fits(group, network, type(optimizer).__name__, f"model.schedules.{self.name or self.hyperparameter}")
                if self.hyperparameter in ("beta1", "beta2"):
                    betas = [float(b) for b in group["betas"]]  # Adam refuses a mix of ints and floats
                    betas[int(self.hyperparameter[-1]) - 1] = value
                    group["betas"] = tuple(betas)
                else:
                    group[self.hyperparameter] = value
        return value

    def __repr__(self) -> str:
        return f"OptimizerSetting({self.hyperparameter!r}, {self.value!r}, networks={list(self.networks)})"


class PenaltySetting(Setting):
    """An attribute (``gamma``, ``weight``) of the penalty named ``penalty`` in ``model.penalties``."""

    sets = "penalty"

    def __init__(self, penalty: str, attribute: str, value: Curve | float):
        super().__init__(value)
        self.penalty, self.attribute = str(penalty), str(attribute)

    def check(self, module, name):
        penalties = module.penalties
        if self.penalty not in penalties:
            raise ConfigError(f"model.schedules.{name} targets penalty {self.penalty!r}, but model.penalties has "
                              f"{sorted(penalties) or 'none'}; expected model.schedules.{name}=null beside a penalty "
                              f"left out (model.penalties.{self.penalty}=null), or that penalty")
        if not hasattr(penalties[self.penalty], self.attribute):
            raise ConfigError(f"model.schedules.{name}: penalty {self.penalty!r} has no attribute {self.attribute!r}")
        if self.attribute in ("gamma", "weight"):  # the penalties refuse a negative one when built
            self.check_values(name, f"{self.penalty}'s {self.attribute}", 0.0)

    def apply(self, module, generator_step):
        value = self.value(generator_step)
        setattr(module.penalties[self.penalty], self.attribute, value)
        return value

    def __repr__(self) -> str:
        return f"PenaltySetting({self.penalty!r}, {self.attribute!r}, {self.value!r})"


class EMAHalfLife(Setting):
    """The EMA generator's half-life in generator steps: each update keeps 0.5 ** (1 / half_life) of the
    average (R3GAN ramps it from 0, a plain copy, to its final value over the burn-in)."""

    sets = "ema_decay"

    def check(self, module, name):
        if module.generator_ema is None:
            raise ConfigError(f"model.schedules.{name} schedules the EMA half-life, but the model keeps no EMA "
                              "generator: set model.ema_decay (any value; the schedule overrides it)")
        self.check_values(name, "the EMA half-life (generator steps)", 0.0)

    def apply(self, module, generator_step):
        half_life = max(self.value(generator_step), 0.0)
        module.generator_ema.decay = 0.5 ** (1.0 / half_life) if half_life > 0 else 0.0
        return half_life
