"""Fully connected networks of Goodfellow et al. 2014 (ReLU generator, maxout discriminator with
dropout). They also serve the 2D toy problems, where the generator's output is left unbounded."""
from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor, nn

from gan.nets.base import Discriminator, Generator, maybe_spectral_norm, output_activation


class Maxout(nn.Module):
    """Goodfellow et al. 2013: the max over ``pieces`` affine maps."""

    def __init__(self, in_features: int, out_features: int, pieces: int, spectral_norm: bool = False):
        super().__init__()
        self.out_features, self.pieces = out_features, pieces
        self.linear = maybe_spectral_norm(nn.Linear(in_features, out_features * pieces), spectral_norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).view(x.size(0), self.out_features, self.pieces).amax(dim=2)


class MLPGenerator(Generator):
    def __init__(
        self,
        latent_dim: int,
        sample_shape: Sequence[int],
        hidden: Sequence[int] = (1200, 1200),
        output: str = "tanh",
        batch_norm: bool = False,
    ):
        super().__init__(latent_dim, sample_shape)
        layers: list[nn.Module] = []
        width = self.latent_dim
        for h in hidden:
            layers += [nn.Linear(width, h)]
            if batch_norm:
                layers += [nn.BatchNorm1d(h)]
            layers += [nn.ReLU()]
            width = h
        layers += [nn.Linear(width, math.prod(self.sample_shape)), output_activation(output)]
        self.net = nn.Sequential(*layers)

    def generate(self, z: Tensor) -> Tensor:
        return self.net(z).view(z.size(0), *self.sample_shape)


class MLPDiscriminator(Discriminator):
    """Maxout hidden layers (``maxout_pieces`` > 1) or LeakyReLU ones (``maxout_pieces`` = 1)."""

    def __init__(
        self,
        sample_shape: Sequence[int],
        hidden: Sequence[int] = (240, 240),
        maxout_pieces: int = 5,
        dropout: float = 0.5,
        input_dropout: float = 0.2,
        negative_slope: float = 0.2,
        spectral_norm: bool = False,
    ):
        super().__init__(sample_shape)
        layers: list[nn.Module] = [nn.Flatten(), nn.Dropout(input_dropout)]
        width = math.prod(self.sample_shape)
        for h in hidden:
            if maxout_pieces > 1:
                layers += [Maxout(width, h, maxout_pieces, spectral_norm)]
            else:
                layers += [maybe_spectral_norm(nn.Linear(width, h), spectral_norm), nn.LeakyReLU(negative_slope)]
            layers += [nn.Dropout(dropout)]
            width = h
        layers += [maybe_spectral_norm(nn.Linear(width, 1), spectral_norm)]
        self.net = nn.Sequential(*layers)

    def classify(self, x: Tensor) -> Tensor:
        return self.net(x)
