"""ResNet generator and discriminator of SN-GAN (Miyato et al. 2018, appendix B, Tables 4-6) and WGAN-GP
(Gulrajani et al. 2017, appendix F), the networks behind the published CIFAR-10 / STL-10 numbers.

Generator: a linear map of z to a ``base`` x ``base`` map, one up-sampling residual block per doubling
(nearest-neighbour up-sampling inside the block), then norm, ReLU, a 3x3 convolution to the image and the
output activation. Block: norm -> ReLU -> up -> conv3x3 -> norm -> ReLU -> conv3x3, plus a shortcut
up -> conv1x1 (the shortcut is learnable whenever the block changes size or width).

Discriminator: an "optimized" first block (conv3x3 -> ReLU -> conv3x3 -> avg-pool, shortcut avg-pool ->
conv1x1), down-sampling residual blocks until the feature map is at most ``feature_size`` wide, then
``extra_blocks`` blocks at that size, ReLU and global sum pooling (SN-GAN; ``pooling=mean``: WGAN-GP) to one
vector, a linear head and, when conditional, the projection of Miyato & Koyama 2018.

Sizes (``base`` and the number of doublings come from the data's resolution, as for DCGAN):
28 -> 7,14,28; 32 -> 4,8,16,32; 48 -> 6,12,24,48; 64 -> 4,...,64.

Widths follow the DCGAN rule: ``width`` channels at the highest resolution, doubling per halving, capped at
``width * max_width_multiplier``. The papers' networks:

- CIFAR-10, 32 px (SN-GAN Table 4, WGAN-GP's CIFAR ResNet): G ``width=256, max_width_multiplier=1`` (WGAN-GP:
  128); D ``width=128, max_width_multiplier=1, feature_size=8, extra_blocks=2`` (down, down, same, same) --
  the defaults of ``arch=resnet``.
- STL-10, 48 px (SN-GAN Table 5): G ``width=64, max_width_multiplier=8`` (6x6x512 -> 256 -> 128 -> 64);
  D ``width=64, max_width_multiplier=16, feature_size=4, extra_blocks=1`` (down 64, 128, 256, 512, then 1024).
- 64 px: the same rule gives G 4x4x1024 -> 512 -> 256 -> 128 -> 64 (``width=64, max_width_multiplier=16``)
  and, with ``feature_size=4, extra_blocks=1``, D down 64, 128, 256, 512 then 1024 at 4x4 (as SN-GAN's
  ImageNet D, one stage shorter).

Both accept the constructor keywords of the DCGAN classes (``norm``, ``spectral_norm``, ``negative_slope``,
``dropout``, ``minibatch...``, ``num_classes``, ``conditioning``), so ``arch=resnet`` swaps them into every
image variant: sngan/cgan (spectral norm, no norm in D), wgan_gp (layer norm in the critic), dcgan/lsgan/wgan
(batch norm in D, as those variants ask), acgan (dropout, auxiliary classifier), cgan (conditional batch
norm in G, projection D).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from gan.nets.base import (Discriminator, Generator, as_shape, check_negative_slope, maybe_dropout, maybe_spectral_norm,
                           output_activation)
from gan.nets.dcgan import check_norm, image_geometry, normalization
from gan.nets.layers import ConditionalBatchNorm
from gan.utils.errors import ConfigError

POOLINGS = ("sum", "mean")


def residual_geometry(sample_shape: Sequence[int], who: str) -> tuple[int, int, int]:
    """(channels, base, doublings) of a square image shape, or a one-line ConfigError: vector data has
    nothing to convolve, and a base above 7 would start from a large map (no published layout)."""
    shape = as_shape(sample_shape)
    if len(shape) == 1:
        raise ConfigError(f"{who} is an image network, but the data's sample shape is the vector {list(shape)}; "
                          "use the variant's own networks (arch=null) on vector data such as the 2D toys")
    channels, base, stages = image_geometry(shape, who)
    if base > 7:
        raise ConfigError(f"{who} needs an image size of 4, 5, 6 or 7 times a power of two (28, 32, 48, 64, 128, ...), "
                          f"got {shape[1]}")
    return channels, base, stages


def reject_options(who: str, options: dict) -> None:
    """Options a network family does not have (e.g. the MLP's ``hidden`` when ``arch=resnet`` meets
    ``model=gan``) as one line naming them, instead of a TypeError deep inside Hydra's instantiation."""
    if options:
        given = ", ".join(f"{name}={value!r}" for name, value in options.items())
        raise ConfigError(f"{who} does not take {given}: an option of another network family (arch=resnet and "
                          "model=r3gan's networks are for the image variants; the MLP of model=gan has its own)")


def stage_widths(width: int, max_width_multiplier: int, count: int) -> list[int]:
    """``width`` * 2^i capped at ``width * max_width_multiplier``, for i = 0 .. count-1."""
    return [int(width) * min(2**i, int(max_width_multiplier)) for i in range(count)]


def init_conv(layer: nn.Module, gain: float) -> nn.Module:
    """SN-GAN's released code (and mimicry): Xavier-uniform weights, gain sqrt(2) on the residual path's
    convolutions, 1 on shortcuts and the first/last layers; zero biases."""
    nn.init.xavier_uniform_(layer.weight, gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def conv(c_in: int, c_out: int, kernel: int, spectral_norm: bool, gain: float = math.sqrt(2)) -> nn.Module:
    return maybe_spectral_norm(init_conv(nn.Conv2d(c_in, c_out, kernel, 1, kernel // 2), gain), spectral_norm)


def apply_norm(layer: nn.Module, x: Tensor, labels: Tensor | None) -> Tensor:
    """A normalization layer, given the labels when it is class-conditional."""
    return layer(x, labels) if isinstance(layer, ConditionalBatchNorm) else layer(x)


class GeneratorBlock(nn.Module):
    """Up-sampling residual block: norm -> ReLU -> up x2 -> conv3x3 -> norm -> ReLU -> conv3x3, + up -> conv1x1."""

    def __init__(self, c_in: int, c_out: int, norm_layer, spectral_norm: bool):
        super().__init__()
        self.norm1, self.norm2 = norm_layer(c_in), norm_layer(c_out)
        self.conv1 = conv(c_in, c_out, 3, spectral_norm)
        self.conv2 = conv(c_out, c_out, 3, spectral_norm)
        self.shortcut = conv(c_in, c_out, 1, spectral_norm, gain=1.0)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        h = F.interpolate(F.relu(apply_norm(self.norm1, x, labels)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(apply_norm(self.norm2, self.conv1(h), labels)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class DiscriminatorBlock(nn.Module):
    """Pre-activation residual block: [norm] -> act -> conv3x3 -> [norm] -> act -> conv3x3 -> [avg-pool], plus
    a shortcut conv1x1 -> [avg-pool] when the block changes size or width. ``first``: SN-GAN's optimized
    first block, conv3x3 -> [norm] -> act -> conv3x3 -> [avg-pool], shortcut [avg-pool] -> conv1x1 (no
    activation on the image). Nothing in place: the input feeds the shortcut and R1's double backward."""

    def __init__(self, c_in: int, c_out: int, down: bool, norm: str, negative_slope: float, spectral_norm: bool,
                 first: bool = False):
        super().__init__()
        self.down, self.first = down, first
        self.norm1 = nn.Identity() if first else normalization(norm, c_in)
        self.conv1 = conv(c_in, c_out, 3, spectral_norm)
        self.norm2 = normalization(norm, c_out)
        self.conv2 = conv(c_out, c_out, 3, spectral_norm)
        self.act = nn.LeakyReLU(negative_slope)  # slope 0 (SN-GAN, WGAN-GP ResNets): ReLU
        learnable = first or down or c_in != c_out
        self.shortcut = conv(c_in, c_out, 1, spectral_norm, gain=1.0) if learnable else None

    def forward(self, x: Tensor) -> Tensor:
        h = x if self.first else self.act(self.norm1(x))
        h = self.conv2(self.act(self.norm2(self.conv1(h))))
        s = x
        if self.first:  # pool first: the 1x1 convolution then runs on a quarter of the pixels
            s = self.shortcut(F.avg_pool2d(s, 2) if self.down else s)
        else:
            s = self.shortcut(s) if self.shortcut is not None else s
            s = F.avg_pool2d(s, 2) if self.down else s
        return (F.avg_pool2d(h, 2) if self.down else h) + s


class GlobalPool(nn.Module):
    """Activation, then the sum (SN-GAN) or mean (WGAN-GP) over the spatial dimensions: (N, C, H, W) -> (N, C)."""

    def __init__(self, negative_slope: float, pooling: str):
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {pooling!r}; expected one of {', '.join(POOLINGS)}")
        self.act, self.pooling = nn.LeakyReLU(negative_slope), pooling

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(x)
        return h.sum(dim=(2, 3)) if self.pooling == "sum" else h.mean(dim=(2, 3))


class ResNetGenerator(Generator):
    """SN-GAN / WGAN-GP ResNet generator (see the module docstring for the layout and widths).

    ``norm``: ``batch`` (the papers), ``layer`` or ``none``; ``conditioning=batchnorm`` makes every block's batch
    norm class-conditional (Miyato & Koyama 2018; the final one stays unconditional, as in their code);
    ``conditioning=embedding`` concatenates a label embedding to z. ``spectral_norm`` on every layer is
    optional (Zhang et al. 2019).
    """

    def __init__(
        self,
        latent_dim: int,
        sample_shape: Sequence[int],
        width: int = 256,
        max_width_multiplier: int = 1,
        norm: str = "batch",
        output: str = "tanh",
        spectral_norm: bool = False,
        num_classes: int | None = None,
        conditioning: str = "embedding",
        embedding_dim: int | None = None,
        **options,
    ):
        super().__init__(latent_dim, sample_shape, num_classes, conditioning, embedding_dim)
        reject_options(type(self).__name__, options)
        channels, self.base, stages = residual_geometry(sample_shape, type(self).__name__)
        if check_norm(norm) != "batch" and self.conditioning == "batchnorm":
            raise ConfigError(f"conditional batch norm replaces the generator's batch norm; got norm={norm!r}, expected 'batch'")

        def norm_layer(c: int) -> nn.Module:
            if self.conditioning == "batchnorm":
                return ConditionalBatchNorm(c, self.num_classes)
            return normalization(norm, c)

        widths = stage_widths(width, max_width_multiplier, stages + 1)[::-1]  # from the base map to the image
        self.input = maybe_spectral_norm(init_conv(nn.Linear(self.input_dim, widths[0] * self.base**2), 1.0), spectral_norm)
        self.blocks = nn.ModuleList(GeneratorBlock(c_in, c_out, norm_layer, spectral_norm) for c_in, c_out in zip(widths, widths[1:]))
        self.output = nn.Sequential(normalization(norm, widths[-1]), nn.ReLU(),
                                    conv(widths[-1], channels, 3, spectral_norm, gain=1.0), output_activation(output))

    def generate(self, z: Tensor, labels: Tensor | None) -> Tensor:
        h = self.input(z).view(z.size(0), -1, self.base, self.base)
        for block in self.blocks:
            h = block(h, labels)
        return self.output(h)


class ResNetDiscriminator(Discriminator):
    """SN-GAN / WGAN-GP ResNet discriminator (see the module docstring for the layout and widths).

    ``norm``: ``none`` (SN-GAN, WGAN-GP at 32 px), ``layer`` (WGAN-GP's 64 px critic) or ``batch``;
    ``negative_slope``: 0 is the papers' ReLU; ``feature_size``/``extra_blocks``: where down-sampling stops
    and how many blocks follow; ``pooling``: ``sum`` (SN-GAN) or ``mean`` (WGAN-GP). ``dropout`` after every
    block, a ``minibatch`` layer on the pooled features, and ``num_classes``/``conditioning`` as for
    :class:`~gan.nets.DCGANDiscriminator`.
    """

    def __init__(
        self,
        sample_shape: Sequence[int],
        width: int = 128,
        max_width_multiplier: int = 1,
        norm: str = "none",
        negative_slope: float = 0.0,
        spectral_norm: bool = False,
        dropout: float = 0.0,
        minibatch: str | None = "none",
        minibatch_group_size: int = 4,
        minibatch_kernels: int = 32,
        minibatch_kernel_dim: int = 8,
        num_classes: int | None = None,
        conditioning: str = "projection",
        feature_size: int = 8,
        extra_blocks: int = 2,
        pooling: str = "sum",
        **options,
    ):
        super().__init__(sample_shape, num_classes, conditioning)
        reject_options(type(self).__name__, options)
        channels, _, _ = residual_geometry(sample_shape, type(self).__name__)
        check_norm(norm)
        negative_slope = check_negative_slope(negative_slope)  # once here, for every block and the pooling
        if int(feature_size) < 1 or int(extra_blocks) < 0:
            raise ConfigError(f"ResNetDiscriminator needs feature_size >= 1 and extra_blocks >= 0, got {feature_size} and {extra_blocks}")
        size, downs = self.sample_shape[1], 0
        while size > int(feature_size) and size % 2 == 0:
            size, downs = size // 2, downs + 1
        widths = stage_widths(width, max_width_multiplier, max(downs + int(extra_blocks), 1))
        blocks, c_in = [], channels + self.input_extra
        for i, c_out in enumerate(widths):
            block = DiscriminatorBlock(c_in, c_out, i < downs, norm, negative_slope, spectral_norm, first=i == 0)
            blocks.append(nn.Sequential(block, *maybe_dropout(dropout)))
            c_in = c_out
        blocks.append(GlobalPool(negative_slope, pooling))
        self.blocks = nn.ModuleList(blocks)
        self.build_vector_head(c_in, lambda inputs: maybe_spectral_norm(init_conv(nn.Linear(inputs, 1), 1.0), spectral_norm),
                               minibatch, minibatch_group_size, minibatch_kernels, minibatch_kernel_dim, spectral_norm)
