"""A soft hinge loss: the hinge loss of SN-GAN with its kinks smoothed by a temperature.

D minimizes   E[t softplus((1 - D(x)) / t)] + E[t softplus((1 + D(G(z))) / t)]
G minimizes   -E[D(G(z))]                                            (as for the hinge loss)

``t softplus(u / t)`` tends to ``relu(u)`` as ``t -> 0`` (the hinge loss) and stays smooth for ``t > 0``, so D keeps
a small gradient on samples it already classifies beyond the margin.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from gan.losses import AdversarialLoss
from gan.utils.errors import ConfigError  # a user error: one line and exit status 2 at the entry points


def soft_relu(u: Tensor, temperature: float) -> Tensor:
    """``t softplus(u / t)``: a smooth relu, within ``t log 2`` of ``relu(u)`` everywhere."""
    return temperature * F.softplus(u / temperature)


class SoftHingeLoss(AdversarialLoss):
    # raw critic scores, not probabilities: the logged train/d/real_score and fake_score are mean logits
    logits_are_probabilities = False
    # no real/fake targets, so label smoothing or flips (model.real_label=0.9, ...) are refused for this loss
    has_targets = False
    # the generator's objective does not compare with a real batch (RpGAN's does)
    generator_needs_real = False

    def __init__(self, temperature: float = 0.5):
        if not float(temperature) > 0:
            raise ConfigError(f"loss.temperature must be > 0 (0 is the hinge loss: loss=hinge), got {temperature}")
        self.temperature = float(temperature)

    def _d(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return soft_relu(1.0 - real_logits, self.temperature).mean() + soft_relu(1.0 + fake_logits, self.temperature).mean()

    def _g(self, fake_logits: Tensor) -> Tensor:
        return -fake_logits.mean()

    def discriminator_loss(self, real_logits, fake_logits, real_targets=None, fake_targets=None):
        """The base class's terms plus two logged ones: the share of the loss each side makes (detached: logged,
        not optimized). Every term lands in the logs as ``train/d/<name>``."""
        terms = super().discriminator_loss(real_logits, fake_logits, real_targets, fake_targets)
        with_margin = lambda logits: (logits.detach().abs() < 1.0).float().mean()  # noqa: E731
        terms["within_margin"] = 0.5 * (with_margin(real_logits) + with_margin(fake_logits))
        return terms

    def __repr__(self) -> str:
        return f"SoftHingeLoss(temperature={self.temperature})"
