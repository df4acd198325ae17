"""Augmentation of what the discriminator sees (``model.augment``), for training on small data.

An :class:`Augment` is applied by :class:`~gan.module.GANModule` to every discriminator input -- reals and
fakes in the discriminator step, fakes in the generator step -- after instance noise. It must be
differentiable, since the generator's gradient flows through it, and penalties that differentiate D at its
inputs (R1, R2) take their gradients with respect to the un-augmented samples, through the augmentation,
as R3GAN does. State that changes during training (an adaptive probability) lives in buffers, so it is
saved in checkpoints and a resumed run continues exactly.
"""
from __future__ import annotations

from torch import Tensor, nn


class Augment(nn.Module):
    """Base class: ``forward(x)`` augments a batch; ``observe`` and ``terms`` are optional hooks."""

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def observe(self, real_logits: Tensor) -> None:
        """Called after every discriminator step with D's logits of the (augmented) real batch; adaptive
        augmentation (ADA) steers its probability with them. Default: nothing."""

    def terms(self) -> dict[str, Tensor]:
        """Values to log with the discriminator's terms (e.g. ``{"augment_p": p}``). Default: none."""
        return {}
