"""Adversarial losses as small pure functions on discriminator logits.

Every function takes raw logits (no sigmoid applied) and returns a scalar. Sigmoid-based objectives use
``softplus`` identities, which are exact and numerically stable:
``-log(sigmoid(x)) = softplus(-x)`` and ``-log(1 - sigmoid(x)) = softplus(x)``.

The classes at the bottom bundle a discriminator and a generator objective so a config can pick a pair
with ``_target_``. Each returns a dict of named terms; ``loss`` is the one that is optimized, the rest
are logged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gan.utils.errors import ConfigError
from gan.utils.targets import class_path


def minimax_discriminator_loss(real_logits: Tensor, fake_logits: Tensor, real_targets: Tensor | float = 1.0,
                               fake_targets: Tensor | float = 0.0) -> Tensor:
    """Goodfellow et al. 2014, eq. 1: -E[log D(x)] - E[log(1 - D(G(z)))], the cross-entropy against
    targets 1 (real) and 0 (fake); label smoothing, noisy labels and flips pass other targets in [0, 1]."""
    return binary_cross_entropy(real_logits, real_targets) + binary_cross_entropy(fake_logits, fake_targets)


def binary_cross_entropy(logits: Tensor, targets: Tensor | float) -> Tensor:
    """E[-t log sigmoid(x) - (1 - t) log(1 - sigmoid(x))] in softplus form; exact for t = 0 and t = 1."""
    if isinstance(targets, float) and targets in (0.0, 1.0):  # skip the zero-weighted half (and its inf * 0)
        return F.softplus(-logits).mean() if targets == 1.0 else F.softplus(logits).mean()
    return (targets * F.softplus(-logits) + (1.0 - targets) * F.softplus(logits)).mean()


def minimax_generator_loss(fake_logits: Tensor) -> Tensor:
    """The saturating generator objective of eq. 1: E[log(1 - D(G(z)))], minimized."""
    return -F.softplus(fake_logits).mean()


def non_saturating_generator_loss(fake_logits: Tensor) -> Tensor:
    """Goodfellow et al. 2014, section 3: maximize log D(G(z)) instead, i.e. minimize -E[log D(G(z))]."""
    return F.softplus(-fake_logits).mean()


def wasserstein_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Arjovsky et al. 2017: the critic maximizes E[D(x)] - E[D(G(z))]."""
    return fake_logits.mean() - real_logits.mean()


def wasserstein_generator_loss(fake_logits: Tensor) -> Tensor:
    """Arjovsky et al. 2017: the generator maximizes E[D(G(z))]."""
    return -fake_logits.mean()


def least_squares_discriminator_loss(real_logits: Tensor, fake_logits: Tensor, a: float | Tensor, b: float | Tensor) -> Tensor:
    """Mao et al. 2017, eq. 2: 1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2] (per-sample a, b allowed)."""
    return 0.5 * (real_logits - b).pow(2).mean() + 0.5 * (fake_logits - a).pow(2).mean()


def least_squares_generator_loss(fake_logits: Tensor, c: float) -> Tensor:
    """Mao et al. 2017, eq. 2: 1/2 E[(D(G(z)) - c)^2]."""
    return 0.5 * (fake_logits - c).pow(2).mean()


def hinge_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Lim & Ye 2017, Miyato et al. 2018: E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_generator_loss(fake_logits: Tensor) -> Tensor:
    """Miyato et al. 2018: -E[D(G(z))]."""
    return -fake_logits.mean()


def relativistic_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Jolicoeur-Martineau 2019 (RpGAN), as R3GAN trains it (Huang et al. 2024, eq. 3):
    E[softplus(-(D(x_i) - D(G(z_i))))], each real paired with one fake."""
    return F.softplus(fake_logits - real_logits).mean()


def relativistic_generator_loss(fake_logits: Tensor, real_logits: Tensor) -> Tensor:
    """The generator's side of RpGAN: E[softplus(-(D(G(z_i)) - D(x_i)))] against a real batch."""
    return F.softplus(real_logits - fake_logits).mean()


def methods_beyond(cls: type, base: type) -> list[str]:
    """The methods ``cls`` and its classes up to ``base`` define that ``base`` lacks (dunders left out): what a class of
    one's own named its methods, told when the ones the framework calls are missing (``d_loss`` for ``_d``)."""
    return sorted({name for klass in cls.__mro__ if not issubclass(base, klass) for name, value in vars(klass).items()
                   if callable(value) and not (name.startswith("__") and name.endswith("__")) and not hasattr(base, name)})


def _overrides(cls: type, *hooks: str) -> bool:
    return any(getattr(cls, hook) is not getattr(AdversarialLoss, hook) for hook in hooks)


def check_loss_class(loss: "AdversarialLoss", key: str = "loss") -> None:
    """A loss of one's own (``loss._target_=mygan.losses.X``) that defines neither objective the module calls (an
    audit: ``d_loss``/``g_loss`` for ``_d``/``_g`` failed at the first step with a bare NotImplementedError). Static:
    it reads the class, calls nothing."""
    cls = type(loss)
    missing = [f"{hook} nor {method}" for hook, method in (("_d", "discriminator_loss"), ("_g", "generator_loss"))
               if not _overrides(cls, hook, method)]
    if not missing:
        return
    found = methods_beyond(cls, AdversarialLoss)
    raise ConfigError(f"{key}._target_={class_path(cls)} defines neither {' and neither '.join(missing)}"
                      f"{' (it defines ' + ', '.join(found) + ')' if found else ''}: a loss of one's own subclasses "
                      "gan.losses.AdversarialLoss and defines _d(real_logits, fake_logits) and _g(fake_logits), each "
                      "returning a scalar tensor (or overrides discriminator_loss / generator_loss, returning a dict of "
                      "terms with the optimized one under 'loss')")


def check_loss_takes_targets(loss: "AdversarialLoss", options: str, key: str = "loss") -> None:
    """``options`` (``model.real_label=0.9``) hand the discriminator loss per-sample targets; a loss of one's own that
    says ``has_targets = True`` must then define the objective that takes them (an audit: NotImplementedError at the
    first step). Static."""
    cls = type(loss)
    if getattr(loss, "has_targets", False) and not _overrides(cls, "_d_targets", "discriminator_loss"):
        raise ConfigError(f"{options} gives the discriminator loss per-sample targets, but {key}._target_="
                          f"{class_path(cls)} (has_targets = True) defines no _d_targets(real_logits, fake_logits, "
                          "real_targets, fake_targets) to take them: define it (targets in [0, 1], 1 = real), or leave "
                          "has_targets False (then label tricks are refused)")


def check_terms(terms: object, who: str, method: str, needs_gradient: bool = False) -> None:
    """What a loss or penalty returned: a dict of named terms, the optimized one a scalar tensor under ``loss``, every
    term a number or a one-element tensor (each is logged). Called on a run's first step only (see GANModule): a
    tensor returned instead failed as ``IndexError: too many indices``, a dict without ``loss`` as ``KeyError`` and a
    per-sample loss at the backward pass (an audit). ``who`` names the piece (``loss._target_=mygan.X``), ``method``
    the method whose return it is; ``needs_gradient``: a ``loss`` without one (detached) is refused too (an adversarial
    loss always has one: a detached one trained nothing, or failed in backward)."""
    expected = "expected a dict of named terms with the optimized one, a scalar tensor, under 'loss' (e.g. {'loss': loss})"
    if not isinstance(terms, dict):
        got = f"a tensor of shape {tuple(terms.shape)}" if isinstance(terms, Tensor) else f"a {type(terms).__name__}"
        raise ConfigError(f"{who}: {method} returned {got}; {expected}")
    if "loss" not in terms:
        raise ConfigError(f"{who}: {method} returned a dict without 'loss' (keys {sorted(map(str, terms))}); {expected}")
    for name, value in terms.items():
        if name == "loss" and needs_gradient and not isinstance(value, Tensor):
            raise ConfigError(f"{who}: {method} returned 'loss' as a {type(value).__name__}; expected a scalar tensor "
                              "computed from D's logits (so it has a gradient)")
        if name == "loss" and needs_gradient and not value.requires_grad:
            raise ConfigError(f"{who}: {method} returned 'loss' without a gradient (detached, read with .item() or "
                              "computed under no_grad); expected a scalar tensor computed from the logits it is given")
        if isinstance(value, Tensor) and value.numel() != 1:
            raise ConfigError(f"{who}: {method} returned {name!r} of shape {tuple(value.shape)}; expected a scalar (reduce "
                              "the per-sample values, e.g. with .mean())")
        if not isinstance(value, (Tensor, int, float)):
            raise ConfigError(f"{who}: {method} returned {name!r} as a {type(value).__name__}; expected a scalar tensor or "
                              "a number (every term is logged)")


def discriminator_method(loss: "AdversarialLoss", with_targets: bool) -> str:
    """The method of ``loss`` whose return the module's discriminator step sees, for messages."""
    if _overrides(type(loss), "discriminator_loss"):
        return "discriminator_loss(real_logits, fake_logits, ...)"
    if with_targets:
        return "_d_targets(real_logits, fake_logits, real_targets, fake_targets)"
    return "_d(real_logits, fake_logits)"


def generator_method(loss: "AdversarialLoss") -> str:
    return "generator_loss(fake_logits, ...)" if _overrides(type(loss), "generator_loss") else "_g(fake_logits)"


class AdversarialLoss:
    """A pair of objectives on logits. Subclasses define the two ``_d``/``_g`` terms.

    ``logits_are_probabilities``: whether sigmoid(logit) is a probability of "real" (so the logged
    D(x) / D(G(z)) scores are probabilities); critics (Wasserstein, hinge, least squares) report raw scores.

    A loss of one's own (``loss._target_=mygan.losses.MyLoss``) subclasses this and defines ``_d`` and ``_g`` (each a
    scalar tensor), or overrides ``discriminator_loss`` / ``generator_loss`` (a dict of terms with ``loss``); the module
    checks the class when it is built (:func:`check_loss_class`) and what it returns on its first steps
    (:func:`check_terms`).
    """

    logits_are_probabilities = False
    #: whether the discriminator objective has real/fake targets that label tricks may change
    has_targets = False
    #: whether the generator objective compares against D's logits of a real batch (relativistic losses)
    generator_needs_real = False
    #: whether the generator's objective flattens where D rejects its samples (the original minimax loss: a D that
    #: wins leaves G no gradient; the health check's advice names loss=non_saturating for it)
    generator_saturates = False
    #: whether both objectives are unchanged when every logit shifts by the same amount (then the sign of D's real
    #: logits, which ADA steers by, follows an arbitrary offset; gan/utils/config.py warns of that pair)
    shift_invariant = False

    def real_margin(self, outputs: Tensor) -> Tensor:
        """How far D's outputs lie on the "real" side of its decision boundary (positive: judged real); ADA steers by
        the sign of this on reals. For logits, the outputs themselves (the boundary is 0)."""
        return outputs

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor, real_targets: Tensor | None = None,
                           fake_targets: Tensor | None = None) -> dict[str, Tensor]:
        """``real_targets``/``fake_targets``: per-sample targets in [0, 1] (1 = real) replacing the defaults
        1 and 0, for losses with ``has_targets`` (label smoothing, noisy labels, flips)."""
        if real_targets is None and fake_targets is None:
            return {"loss": self._d(real_logits, fake_logits)}
        if not self.has_targets:
            raise ConfigError(f"{type(self).__name__} has no real/fake targets to smooth or flip; label tricks need "
                             "loss=minimax, non_saturating or least_squares")
        real_targets = torch.ones_like(real_logits) if real_targets is None else real_targets
        fake_targets = torch.zeros_like(fake_logits) if fake_targets is None else fake_targets
        return {"loss": self._d_targets(real_logits, fake_logits, real_targets, fake_targets)}

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> dict[str, Tensor]:
        """``real_logits``: D's logits of a real batch, for losses with ``generator_needs_real``."""
        return {"loss": self._g(fake_logits)}

    def score(self, logits: Tensor) -> Tensor:
        """Mean D output in the loss's natural units (a probability for sigmoid losses)."""
        logits = logits.detach().float()
        return (torch.sigmoid(logits) if self.logits_are_probabilities else logits).mean()

    def _d(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _g(self, fake_logits: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _d_targets(self, real_logits, fake_logits, real_targets, fake_targets) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MinimaxLoss(AdversarialLoss):
    """The original minimax game, with the saturating generator objective (eq. 1 of the paper)."""

    logits_are_probabilities = True
    has_targets = True
    generator_saturates = True

    def _d(self, real_logits, fake_logits):
        return minimax_discriminator_loss(real_logits, fake_logits)

    def _d_targets(self, real_logits, fake_logits, real_targets, fake_targets):
        return minimax_discriminator_loss(real_logits, fake_logits, real_targets, fake_targets)

    def _g(self, fake_logits):
        return minimax_generator_loss(fake_logits)


class NonSaturatingLoss(MinimaxLoss):
    """Minimax discriminator with the non-saturating generator objective used in practice."""

    generator_saturates = False

    def _g(self, fake_logits):
        return non_saturating_generator_loss(fake_logits)


class WassersteinLoss(AdversarialLoss):
    shift_invariant = True

    def _d(self, real_logits, fake_logits):
        return wasserstein_discriminator_loss(real_logits, fake_logits)

    def _g(self, fake_logits):
        return wasserstein_generator_loss(fake_logits)


class LeastSquaresLoss(AdversarialLoss):
    """LSGAN with targets a (fake, for D), b (real, for D), c (what G wants D to believe). A label target t
    in [0, 1] (1 = real) maps to a + t (b - a)."""

    has_targets = True

    def __init__(self, a: float = 0.0, b: float = 1.0, c: float = 1.0):
        self.a, self.b, self.c = float(a), float(b), float(c)
        if self.a == self.b:  # D's targets for real and fake samples equal: nothing to tell apart (an audit)
            raise ConfigError(f"loss.a={a} and loss.b={b}: D's targets for fake (a) and real (b) samples must differ, "
                              "or D learns nothing (the paper's a=0, b=1 or a=-1, b=1)")

    def real_margin(self, outputs: Tensor) -> Tensor:
        """From the midpoint of D's fake and real targets, towards the real one: with a=0, b=1 a D that cannot tell
        the two apart outputs about 0.5 for both, all of it positive, so ADA steering by the sign of the raw output
        drove its probability to 1 on a D that was not overfitting (an audit: p 0.96 after 60 steps of model=lsgan
        augment=ada). With a > b the real side is below the midpoint."""
        middle = (self.a + self.b) / 2
        return outputs - middle if self.b > self.a else middle - outputs

    def _d(self, real_logits, fake_logits):
        return least_squares_discriminator_loss(real_logits, fake_logits, self.a, self.b)

    def _g(self, fake_logits):
        return least_squares_generator_loss(fake_logits, self.c)

    def _d_targets(self, real_logits, fake_logits, real_targets, fake_targets):
        span = self.b - self.a
        return least_squares_discriminator_loss(real_logits, fake_logits, self.a + fake_targets * span, self.a + real_targets * span)

    def __repr__(self) -> str:
        return f"LeastSquaresLoss(a={self.a}, b={self.b}, c={self.c})"


class HingeLoss(AdversarialLoss):
    def _d(self, real_logits, fake_logits):
        return hinge_discriminator_loss(real_logits, fake_logits)

    def _g(self, fake_logits):
        return hinge_generator_loss(fake_logits)


class RelativisticLoss(AdversarialLoss):
    """RpGAN (Jolicoeur-Martineau 2019), the loss of R3GAN (Huang et al. 2024): D and G each compare one
    real and one fake logit, ``softplus(-(D(x) - D(G(z))))`` for D and the mirror image for G. The generator
    step therefore needs D's logits of a real batch (R3GAN draws a fresh one for it); the logged scores are
    raw logits."""

    generator_needs_real = True
    shift_invariant = True

    def _d(self, real_logits, fake_logits):
        return relativistic_discriminator_loss(real_logits, fake_logits)

    def generator_loss(self, fake_logits, real_logits=None):
        if real_logits is None:
            raise ConfigError("RelativisticLoss.generator_loss compares fakes with reals: pass real_logits")
        return {"loss": relativistic_generator_loss(fake_logits, real_logits)}
