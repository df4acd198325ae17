"""Regularizers of the discriminator: the WGAN-GP gradient penalty and WGAN weight clipping.

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
    """Mean over samples of (||grad_x D(x)||_2 - center)^2, the norm taken over all non-batch dims."""
    points = points.detach().requires_grad_(True)
    outputs = critic(points)
    (grads,) = torch.autograd.grad(outputs.sum(), points, create_graph=True)
    norms = grads.flatten(start_dim=1).norm(2, dim=1)
    return (norms - center).pow(2).mean()


class GradientPenalty:
    """Gulrajani et al. 2017: weight * E[(||grad D(x_hat)||_2 - 1)^2] at per-sample interpolates x_hat."""

    def __init__(self, weight: float = 10.0, center: float = 1.0):
        self.weight, self.center = float(weight), float(center)

    def __call__(self, critic, real: Tensor, fake: Tensor) -> dict[str, Tensor]:
        penalty = gradient_norm_penalty(critic, interpolate(real, fake.detach()), self.center)
        return {"gp": penalty, "loss": self.weight * penalty}

    def __repr__(self) -> str:
        return f"GradientPenalty(weight={self.weight}, center={self.center})"


@torch.no_grad()
def clip_weights(module: nn.Module, clip_value: float) -> None:
    """Arjovsky et al. 2017: clamp every parameter of the critic to [-c, c] after each critic update."""
    for param in module.parameters():
        param.clamp_(-clip_value, clip_value)
