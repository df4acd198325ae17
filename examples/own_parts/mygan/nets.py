"""Small networks for 2-D points, on the framework's bases (gan.nets.Generator, gan.nets.Discriminator).

The generator defines ``generate(z, labels)``; the base's ``forward`` checks z's shape, adds a label embedding when
conditional, and calls it. The discriminator fills ``self.blocks`` (its outputs are the features feature matching
reads) and ``self.head`` (the last block's output to one logit per sample); the base's ``evaluate`` checks the input
shape and runs them.
"""
from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor, nn

from gan.nets import Discriminator, Generator
from gan.nets.base import output_activation


class PointGenerator(Generator):
    """z -> an MLP of ``hidden`` SiLU layers -> a point of ``sample_shape`` (unbounded with ``output=identity``)."""

    def __init__(self, latent_dim: int, sample_shape: Sequence[int], hidden: Sequence[int] = (128, 128),
                 output: str = "identity", num_classes: int | None = None):
        super().__init__(latent_dim, sample_shape, num_classes)
        layers, width = [], self.input_dim  # input_dim: latent_dim, plus the label embedding when conditional
        for h in hidden:
            layers += [nn.Linear(width, h), nn.SiLU()]
            width = h
        layers += [nn.Linear(width, math.prod(self.sample_shape)), output_activation(output)]
        self.net = nn.Sequential(*layers)

    def generate(self, z: Tensor, labels: Tensor | None) -> Tensor:
        return self.net(z).view(z.size(0), *self.sample_shape)


class PointDiscriminator(Discriminator):
    """A point -> ``hidden`` LeakyReLU blocks -> one logit. No batch norm, so the framework passes real and fake
    samples through it together (``samples_independent``) and the penalty reuses that pass."""

    labels_as_channels = False  # with conditioning=concat, one-hot labels are appended as extra entries

    def __init__(self, sample_shape: Sequence[int], hidden: Sequence[int] = (128, 128), negative_slope: float = 0.2,
                 num_classes: int | None = None, conditioning: str = "projection"):
        super().__init__(sample_shape, num_classes, conditioning)
        width, blocks = math.prod(self.sample_shape) + self.input_extra, []
        inputs: list[nn.Module] = [nn.Flatten()]  # the first block starts from the flattened sample
        for h in hidden:
            blocks.append(nn.Sequential(*inputs, nn.Linear(width, h), nn.LeakyReLU(negative_slope)))
            inputs, width = [], h
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(width, 1)  # (N, 1): the base reshapes it to (N,)
        self.build_conditioning(width)  # a projection embedding or a classifier head when conditional; else nothing
