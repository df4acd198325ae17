"""Regularizers of the discriminator: the WGAN-GP gradient penalty, R1, and WGAN weight clipping.

The penalty is returned as a differentiable term (``create_graph=True``) so the module adds it to the
adversarial loss and runs ONE backward. That single backward is what DDP all-reduces; gradients taken
with ``autograd.grad`` alone are never synchronised across ranks.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn


def interpolate(real: Tensor, fake: Tensor) -> Tensor:
    """Random points on straight lines between real and fake samples, one weight per sample."""
    alpha = torch.rand((real.size(0),) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
    return alpha * real + (1.0 - alpha) * fake


def gradient_norm_penalty(critic: Callable[[Tensor], Tensor], points: Tensor, center: float = 1.0) -> Tensor:
    """Mean over samples of (||grad_x D(x)||_2 - center)^2, the norm taken over all non-batch dims.

    Under mixed precision it is computed in fp32 with autocast off: fp16 input gradients underflow, and
    this gradient is not covered by the loss scaler (only the final backward is).
    """
    mixed_precision = torch.is_autocast_enabled(points.device.type)
    points = (points.float() if mixed_precision else points).detach().requires_grad_(True)
    with torch.autocast(points.device.type, enabled=False):
        outputs = critic(points)
        (grads,) = torch.autograd.grad(outputs.sum(), points, create_graph=True)
    norms = grads.flatten(start_dim=1).norm(2, dim=1)
    return (norms - center).pow(2).mean()


def check_interval(interval: int) -> int:
    if int(interval) < 1:
        raise ValueError(f"penalty interval must be a positive integer (discriminator steps), got {interval}")
    return int(interval)


class GradientPenalty:
    """Gulrajani et al. 2017: weight * E[(||grad D(x_hat)||_2 - 1)^2] at per-sample interpolates x_hat.

    ``interval``: lazy regularization (Karras et al. 2020): the module applies the penalty every ``interval``
    discriminator steps, scaled by ``interval`` so its average strength is unchanged.
    """

    def __init__(self, weight: float = 10.0, center: float = 1.0, interval: int = 1):
        self.weight, self.center, self.interval = float(weight), float(center), check_interval(interval)

    def __call__(self, critic, real: Tensor, fake: Tensor) -> dict[str, Tensor]:
        penalty = gradient_norm_penalty(critic, interpolate(real, fake.detach()), self.center)
        return {"gp": penalty, "loss": self.weight * self.interval * penalty}

    def __repr__(self) -> str:
        return f"GradientPenalty(weight={self.weight}, center={self.center}, interval={self.interval})"


class R1Penalty:
    """Mescheder et al. 2018, eq. 9: (gamma / 2) E_real[||grad D(x)||^2], on real samples only.

    ``interval``: lazy R1 (Karras et al. 2020, StyleGAN2 section 3.1): applied every ``interval``
    discriminator steps (the module's counter), scaled by ``interval``.
    """

    def __init__(self, gamma: float = 10.0, interval: int = 1):
        self.gamma, self.interval = float(gamma), check_interval(interval)

    def __call__(self, critic, real: Tensor, fake: Tensor) -> dict[str, Tensor]:
        penalty = gradient_norm_penalty(critic, real, center=0.0)  # (||g|| - 0)^2 = ||g||^2
        return {"r1": penalty, "loss": 0.5 * self.gamma * self.interval * penalty}

    def __repr__(self) -> str:
        return f"R1Penalty(gamma={self.gamma}, interval={self.interval})"


@torch.no_grad()
def clip_weights(module: nn.Module, clip_value: float) -> None:
    """Arjovsky et al. 2017: clamp every parameter of the critic to [-c, c] after each critic update."""
    for param in module.parameters():
        param.clamp_(-clip_value, clip_value)
