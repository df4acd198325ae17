"""Fully connected networks of Goodfellow et al. 2014 (ReLU generator, maxout discriminator with
dropout). They also serve the 2D toy problems, where the generator's output is left unbounded."""
from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor, nn

from gan.nets.base import Discriminator, Generator, check_negative_slope, maybe_dropout, maybe_spectral_norm, output_activation
from gan.nets.layers import FullPrecisionLinear, fourier_input
from gan.utils.errors import ConfigError


class Maxout(nn.Module):
    """Goodfellow et al. 2013: the max over ``pieces`` affine maps."""

    def __init__(self, in_features: int, out_features: int, pieces: int, spectral_norm: bool = False):
        super().__init__()
        self.out_features, self.pieces = out_features, pieces
        self.linear = maybe_spectral_norm(nn.Linear(in_features, out_features * pieces), spectral_norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).view(x.size(0), self.out_features, self.pieces).amax(dim=2)


def generator_mlp(in_features: int, hidden: Sequence[int], out_features: int, output: str = "tanh",
                  batch_norm: bool = False, negative_slope: float = 0.0, spectral_norm: bool = False,
                  coordinates: bool = False) -> nn.Sequential:
    """Linear layers of ``hidden`` units, each with optional batch norm then ReLU (LeakyReLU with
    ``negative_slope`` > 0), and a linear map to ``out_features`` with the ``output`` activation.
    ``coordinates``: the output is a low-dimensional point (the 2D toys), so its layer stays in fp32 under
    mixed precision (:class:`~gan.nets.layers.FullPrecisionLinear`)."""
    layers: list[nn.Module] = []
    width, negative_slope = in_features, check_negative_slope(negative_slope)
    for h in hidden:
        layers += [maybe_spectral_norm(nn.Linear(width, h), spectral_norm)]
        if batch_norm:
            layers += [nn.BatchNorm1d(h)]
        layers += [nn.LeakyReLU(negative_slope) if negative_slope > 0 else nn.ReLU()]
        width = h
    output_layer = (FullPrecisionLinear if coordinates else nn.Linear)(width, out_features)
    layers += [maybe_spectral_norm(output_layer, spectral_norm), output_activation(output)]
    return nn.Sequential(*layers)


def discriminator_mlp_blocks(in_features: int, hidden: Sequence[int], maxout_pieces: int = 1, dropout: float = 0.0,
                             input_dropout: float = 0.0, negative_slope: float = 0.2, spectral_norm: bool = False,
                             fourier_features: int = 0, fourier_scales: Sequence[float] = (0.5, 5.0)) -> tuple[list[nn.Module], int]:
    """The hidden blocks of an MLP discriminator (a block per hidden layer, its output a feature for
    feature matching) and the width of the last: maxout (``maxout_pieces`` > 1) or LeakyReLU layers, dropout
    after each, input dropout and optional Fourier features of the input in the first block."""
    negative_slope = check_negative_slope(negative_slope)  # checked even where maxout leaves it unused
    layers: list[nn.Module] = [nn.Flatten(), *maybe_dropout(input_dropout)]
    fourier, width = fourier_input(in_features, fourier_features, fourier_scales)
    layers += fourier
    blocks = []
    for h in hidden:
        if maxout_pieces > 1:
            layers += [Maxout(width, h, maxout_pieces, spectral_norm)]
        else:
            layers += [maybe_spectral_norm(nn.Linear(width, h), spectral_norm), nn.LeakyReLU(negative_slope)]
        blocks.append(nn.Sequential(*layers, *maybe_dropout(dropout)))
        layers, width = [], h
    return blocks or [nn.Sequential(*layers)], width


class MLPGenerator(Generator):
    """``negative_slope`` > 0 makes the hidden activations LeakyReLU (R3GAN's toy MLP) instead of ReLU;
    ``num_classes`` (``conditioning: embedding`` only) and ``spectral_norm``: see :class:`Generator`."""

    def __init__(
        self,
        latent_dim: int,
        sample_shape: Sequence[int],
        hidden: Sequence[int] = (1200, 1200),
        output: str = "tanh",
        batch_norm: bool = False,
        negative_slope: float = 0.0,
        spectral_norm: bool = False,
        num_classes: int | None = None,
        conditioning: str = "embedding",
        embedding_dim: int | None = None,
    ):
        super().__init__(latent_dim, sample_shape, num_classes, conditioning, embedding_dim)
        if self.conditioning == "batchnorm":
            raise ConfigError("MLPGenerator supports conditioning='embedding' only (conditional batch norm needs DCGANGenerator)")
        self.net = generator_mlp(self.input_dim, hidden, math.prod(self.sample_shape), output, batch_norm,
                                 negative_slope, spectral_norm, coordinates=len(self.sample_shape) == 1)

    def generate(self, z: Tensor, labels: Tensor | None) -> Tensor:
        return self.net(z).view(z.size(0), *self.sample_shape)


class MLPDiscriminator(Discriminator):
    """Maxout hidden layers (``maxout_pieces`` > 1) or LeakyReLU ones (``maxout_pieces`` = 1), dropout
    after each; ``minibatch`` layer before the output (see :class:`DCGANDiscriminator`).
    ``fourier_features`` > 0 feeds the first layer :class:`~gan.nets.layers.FourierFeatures` of the input
    with frequencies spread over ``fourier_scales`` (cycles per unit), for sharp low-dimensional modes."""

    labels_as_channels = False

    def __init__(
        self,
        sample_shape: Sequence[int],
        hidden: Sequence[int] = (240, 240),
        maxout_pieces: int = 5,
        dropout: float = 0.5,
        input_dropout: float = 0.2,
        negative_slope: float = 0.2,
        spectral_norm: bool = False,
        minibatch: str | None = "none",
        minibatch_group_size: int = 4,
        minibatch_kernels: int = 32,
        minibatch_kernel_dim: int = 8,
        fourier_features: int = 0,
        fourier_scales: Sequence[float] = (0.5, 5.0),
        num_classes: int | None = None,
        conditioning: str = "projection",
    ):
        super().__init__(sample_shape, num_classes, conditioning)
        blocks, width = discriminator_mlp_blocks(math.prod(self.sample_shape) + self.input_extra, hidden, maxout_pieces,
                                                 dropout, input_dropout, negative_slope, spectral_norm,
                                                 fourier_features, fourier_scales)
        self.blocks = nn.ModuleList(blocks)
        self.build_vector_head(width, lambda inputs: maybe_spectral_norm(nn.Linear(inputs, 1), spectral_norm),
                               minibatch, minibatch_group_size, minibatch_kernels, minibatch_kernel_dim, spectral_norm)
