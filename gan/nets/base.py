"""What every generator and discriminator shares: the sample shape they were built for, checked at the
boundary so a data/model mismatch fails with both shapes named instead of a matmul error deep inside."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


def as_shape(shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(s) for s in shape)


class Generator(nn.Module):
    """Maps latent codes of size ``latent_dim`` to samples of ``sample_shape``."""

    def __init__(self, latent_dim: int, sample_shape: Sequence[int]):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.sample_shape = as_shape(sample_shape)

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() != 2 or z.size(1) != self.latent_dim:
            raise ValueError(
                f"{type(self).__name__} expects latent codes of shape (N, {self.latent_dim}), got {tuple(z.shape)}"
            )
        return self.generate(z)

    def generate(self, z: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def noise(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        device = device if device is not None else next(self.parameters()).device
        return torch.randn(n, self.latent_dim, generator=generator).to(device)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples in the data's value range ([-1, 1] for images), in eval mode."""
        was_training = self.training
        self.eval()
        try:
            return self(self.noise(n, generator))
        finally:
            self.train(was_training)


class Discriminator(nn.Module):
    """Maps samples of ``sample_shape`` to one logit each, shape (N,)."""

    def __init__(self, sample_shape: Sequence[int]):
        super().__init__()
        self.sample_shape = as_shape(sample_shape)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.sample_shape:
            raise ValueError(
                f"{type(self).__name__} was built for samples of shape {self.sample_shape} "
                f"but got {tuple(x.shape[1:])}: set the model's data shape to match the data"
            )
        return self.classify(x).reshape(x.size(0))

    def classify(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def output_activation(name: str) -> nn.Module:
    """``tanh`` for data scaled to [-1, 1] (images), ``identity`` for unbounded data (2D toys)."""
    choices = {"tanh": nn.Tanh, "identity": nn.Identity, "sigmoid": nn.Sigmoid}
    if name not in choices:
        raise ValueError(f"unknown output activation {name!r}; expected one of {sorted(choices)}")
    return choices[name]()


def maybe_spectral_norm(layer: nn.Module, enabled: bool) -> nn.Module:
    """Miyato et al. 2018: divide the weight by its largest singular value (one power iteration a step)."""
    return nn.utils.parametrizations.spectral_norm(layer) if enabled else layer
