"""R3GAN image networks: a simplified Config E of Huang, Gokaslan, Kuleshov & Tompkin 2024 ("The GAN is
dead; long live the GAN! A Modern GAN Baseline", NeurIPS, section 3 and appendix), after R3GAN/Networks.py.

What is kept from the paper's Config E:

- no normalization anywhere; leaky ReLU 0.2 with a learned bias before it (R3GAN's BiasedActivation);
- residual blocks with a 1-3-1 bottleneck: conv1x1 (expand by ``expansion``) -> act -> grouped conv3x3
  (``group_channels`` channels per group; the CIFAR-10 preset has 96 groups of 16) -> act -> conv1x1 back;
- fix-up initialization: the last layer of every residual block is zero, so a fresh block is the identity;
  the two others are drawn from N(0, (gain * L^(-1/4))^2 / fan_in), L the number of residual blocks in the
  network (section 3.2: the variance of the residual branches is scaled so that it does not grow with depth);
  every other layer has the MSR (He) init with gain 1;
- resampling with the [1, 3, 3, 1] low-pass filter (bilinear up-sampling, its transpose for down-sampling),
  the width changed by a 1x1 convolution before up-sampling / after down-sampling;
- G starts from a learned ``base`` x ``base`` basis modulated by a linear map of z; D ends with a depthwise
  ``base`` x ``base`` convolution to one vector and a linear head; G's output is linear (``output=identity``).

Vector data (the 2D toys): both become MLPs of ``vector_depth`` layers of ``width`` units and no
normalization, with leaky ReLU 0.2 in D and ``vector_negative_slope`` in G (0: ReLU, whose flat regions let
G map whole regions of z onto one sharp mode; leaky ReLU never flattens); the discriminator can take Fourier
features of its input (``fourier_features``, ``fourier_scales``: see gan/nets/layers.FourierFeatures), since
a plain MLP resolves sharp 2D modes late.

What is simplified: no mixed precision per stage, no custom CUDA kernels (plain PyTorch convolutions, so
R1/R2's double backward works on any device), ``blocks_per_stage`` equal for every stage, and class
conditioning done as in the rest of the framework (a label embedding concatenated to z in G; a projection
discriminator, whose logit keeps an unconditional term, instead of R3GAN's pure inner product).

Sizes: ``base`` and the number of doublings come from the resolution as for DCGAN (28 -> 7, 14, 28;
32 -> 4, 8, 16, 32; 64 -> 4, ..., 64). Widths: ``width`` channels at the highest resolution, doubling per
halving up to ``width * max_width_multiplier`` (the CIFAR-10 preset: 768 everywhere, multiplier 1).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan.nets.base import Discriminator, Generator, check_negative_slope, maybe_dropout, output_activation
from gan.nets.dcgan import is_vector
from gan.nets.layers import refuse_fourier_features_on_images
from gan.nets.mlp import discriminator_mlp_blocks, generator_mlp
from gan.nets.resnet import reject_options, residual_geometry, stage_widths
from gan.utils.errors import ConfigError

#: R3GAN's BiasedActivation.Gain: the He gain of a leaky ReLU with slope 0.2
LEAKY_RELU_GAIN = math.sqrt(2 / (1 + 0.2**2))


def msr_init(layer: nn.Module, gain: float = 1.0) -> nn.Module:
    """R3GAN's MSRInitializer: weights from N(0, (gain / sqrt(fan_in))^2), gain 0 meaning zero (fix-up)."""
    fan_in = layer.weight[0].numel()
    nn.init.normal_(layer.weight, 0.0, gain / math.sqrt(fan_in))
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def conv(c_in: int, c_out: int, kernel: int = 1, gain: float = 1.0, groups: int = 1) -> nn.Conv2d:
    return msr_init(nn.Conv2d(c_in, c_out, kernel, padding=(kernel - 1) // 2, groups=groups, bias=False), gain)


class BiasedLeakyReLU(nn.Module):
    """A learned per-channel bias (zero at start), then leaky ReLU 0.2: the convolutions carry no bias."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), 0.2)


class ResidualBlock(nn.Module):
    """x + conv1x1(act(grouped conv3x3(act(conv1x1(x))))), the last conv zero-initialized (fix-up)."""

    def __init__(self, channels: int, expansion: int, group_channels: int, kernel_size: int, total_blocks: int):
        super().__init__()
        expanded = channels * int(expansion)
        if expanded % int(group_channels):
            raise ConfigError(f"R3GAN residual blocks need width x expansion divisible by group_channels, got "
                              f"{channels} x {expansion} = {expanded} and group_channels={group_channels}")
        # section 3.2 / Networks.py: gain * L^(-1/(2m-2)) with m = 3 layers on the residual branch
        gain = LEAKY_RELU_GAIN * total_blocks ** (-1 / 4)
        self.residual = nn.Sequential(
            conv(channels, expanded, 1, gain),
            BiasedLeakyReLU(expanded),
            conv(expanded, expanded, kernel_size, gain, groups=expanded // int(group_channels)),
            BiasedLeakyReLU(expanded),
            conv(expanded, channels, 1, gain=0.0),  # fix-up: the block starts as the identity
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.residual(x)


def lowpass_kernel() -> Tensor:
    """R3GAN's CreateLowpassKernel([1, 2, 1], Inplace=False): [1, 3, 3, 1] in each direction, sum 1."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    kernel = torch.outer(taps, taps)
    return kernel / kernel.sum()


class Resample(nn.Module):
    """x2 up-sampling (the bilinear filter, as a transposed depthwise convolution) or /2 down-sampling (the
    same filter, stride 2), with zero padding like R3GAN's reference resamplers."""

    def __init__(self, up: bool):
        super().__init__()
        self.up = up
        self.register_buffer("kernel", lowpass_kernel()[None, None], persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        channels = x.size(1)
        kernel = self.kernel.to(x.dtype).expand(channels, 1, 4, 4)
        if self.up:
            return F.conv_transpose2d(x, 4 * kernel, stride=2, padding=1, groups=channels)
        return F.conv2d(x, kernel, stride=2, padding=1, groups=channels)


class GenerativeBasis(nn.Module):
    """A learned (C, base, base) map, scaled per channel by a linear map of z (R3GAN's first layer)."""

    def __init__(self, input_dim: int, channels: int, base: int):
        super().__init__()
        self.basis = nn.Parameter(torch.randn(channels, base, base))
        self.linear = msr_init(nn.Linear(input_dim, channels, bias=False))

    def forward(self, z: Tensor) -> Tensor:
        return self.basis[None] * self.linear(z)[:, :, None, None]


def check_unnormalized(who: str, spectral_norm: bool) -> None:
    if spectral_norm:
        raise ConfigError(f"{who} takes no spectral_norm (got true): R3GAN's networks are unnormalized by design and "
                          "their zero-initialized fix-up layers have no singular value to divide by")


def vector_widths(width: int, depth: int) -> list[int]:
    """The hidden widths of the MLP that replaces either network on vector data (``depth`` layers of ``width``)."""
    if int(depth) < 0:  # built a linear network, silently, as 0 does on purpose (as an MLP's hidden: [] does)
        raise ConfigError(f"vector_depth must be >= 0 (the hidden layers of the MLP on vector data; 0: a linear network), got {depth}")
    return [int(width)] * int(depth)


class R3GANGenerator(Generator):
    """Simplified R3GAN Config E generator (see the module docstring).

    Args: ``latent_dim``, ``sample_shape``; ``width``/``max_width_multiplier`` (channels per stage);
    ``blocks_per_stage`` residual blocks after each stage's transition; ``expansion`` and ``group_channels``
    of the bottleneck; ``kernel_size`` of its grouped convolution; ``output`` activation (``identity`` as in
    the paper, ``tanh`` to bound it); ``num_classes``/``conditioning`` (``embedding`` only)/``embedding_dim``;
    ``spectral_norm`` must stay false (accepted because every variant's tricks pass it).
    """

    def __init__(
        self,
        latent_dim: int,
        sample_shape: Sequence[int],
        width: int = 768,
        max_width_multiplier: int = 1,
        blocks_per_stage: int = 2,
        expansion: int = 2,
        group_channels: int = 16,
        kernel_size: int = 3,
        output: str = "identity",
        spectral_norm: bool = False,
        num_classes: int | None = None,
        conditioning: str = "embedding",
        embedding_dim: int | None = None,
        vector_depth: int = 3,
        vector_negative_slope: float = 0.2,
        **options,
    ):
        super().__init__(latent_dim, sample_shape, num_classes, conditioning, embedding_dim)
        who = type(self).__name__
        reject_options(who, options)
        check_unnormalized(who, spectral_norm)
        if self.conditioning == "batchnorm":
            raise ConfigError(f"{who} has no batch norm to condition; use conditioning=embedding")
        if is_vector(sample_shape):  # the 2D toys: nothing to convolve
            slope = check_negative_slope(vector_negative_slope, "vector_negative_slope")
            self.stages = nn.ModuleList([generator_mlp(self.input_dim, vector_widths(width, vector_depth), self.sample_shape[0],
                                                       output, negative_slope=slope, coordinates=True)])
            self.output = nn.Identity()
            return
        channels, base, doublings = residual_geometry(sample_shape, who)
        widths = stage_widths(width, max_width_multiplier, doublings + 1)[::-1]  # from the base map to the image
        total = int(blocks_per_stage) * len(widths)

        def blocks(c: int) -> list[nn.Module]:
            return [ResidualBlock(c, expansion, group_channels, kernel_size, total) for _ in range(int(blocks_per_stage))]

        stages = [nn.Sequential(GenerativeBasis(self.input_dim, widths[0], base), *blocks(widths[0]))]
        for c_in, c_out in zip(widths, widths[1:]):
            transition = [conv(c_in, c_out)] if c_in != c_out else []
            stages.append(nn.Sequential(*transition, Resample(up=True), *blocks(c_out)))
        self.stages = nn.ModuleList(stages)
        self.output = nn.Sequential(conv(widths[-1], channels), output_activation(output))

    def generate(self, z: Tensor, labels: Tensor | None) -> Tensor:
        h = z
        for stage in self.stages:
            h = stage(h)
        return self.output(h)


class R3GANDiscriminator(Discriminator):
    """Simplified R3GAN Config E discriminator (see the module docstring).

    Args: ``sample_shape``; ``width``/``max_width_multiplier``, ``blocks_per_stage``, ``expansion``,
    ``group_channels``, ``kernel_size`` as for :class:`R3GANGenerator`; ``dropout`` after every stage and a
    ``minibatch`` layer before the head (off in the paper; accepted so every trick composes);
    ``num_classes``/``conditioning`` as for every discriminator (``projection``: Miyato & Koyama 2018);
    ``spectral_norm`` must stay false.
    """

    def __init__(
        self,
        sample_shape: Sequence[int],
        width: int = 768,
        max_width_multiplier: int = 1,
        blocks_per_stage: int = 2,
        expansion: int = 2,
        group_channels: int = 16,
        kernel_size: int = 3,
        spectral_norm: bool = False,
        dropout: float = 0.0,
        minibatch: str | None = "none",
        minibatch_group_size: int = 4,
        minibatch_kernels: int = 32,
        minibatch_kernel_dim: int = 8,
        num_classes: int | None = None,
        conditioning: str = "projection",
        vector_depth: int = 3,
        fourier_features: int = 0,
        fourier_scales: Sequence[float] = (0.5, 5.0),
        **options,
    ):
        super().__init__(sample_shape, num_classes, conditioning)
        who = type(self).__name__
        reject_options(who, options)
        check_unnormalized(who, spectral_norm)
        if is_vector(sample_shape):  # the 2D toys: an MLP, with Fourier features of the input when asked
            self.labels_as_channels = False
            blocks, features = discriminator_mlp_blocks(self.sample_shape[0] + self.input_extra, vector_widths(width, vector_depth),
                                                        dropout=dropout, fourier_features=fourier_features,
                                                        fourier_scales=fourier_scales)
            self.blocks = nn.ModuleList(blocks)
            self.build_vector_head(features, lambda inputs: nn.Linear(inputs, 1), minibatch, minibatch_group_size,
                                   minibatch_kernels, minibatch_kernel_dim)
            return
        refuse_fourier_features_on_images(fourier_features, self.sample_shape)  # they were ignored there
        channels, base, doublings = residual_geometry(sample_shape, who)
        widths = stage_widths(width, max_width_multiplier, doublings + 1)  # from the image to the base map
        total = int(blocks_per_stage) * len(widths)

        def blocks(c: int) -> list[nn.Module]:
            return [ResidualBlock(c, expansion, group_channels, kernel_size, total) for _ in range(int(blocks_per_stage))]

        stages, c_in = [], channels + self.input_extra
        for i, c in enumerate(widths):
            layers = [conv(c_in, c)] if i == 0 else []  # R3GAN's extraction layer: 1x1, no activation
            layers += blocks(c)
            if i + 1 < len(widths):
                layers += [Resample(up=False), *([conv(c, widths[i + 1])] if widths[i + 1] != c else [])]
            else:  # R3GAN's DiscriminativeBasis: a depthwise base x base convolution to one vector per sample
                layers += [msr_init(nn.Conv2d(c, c, base, groups=c, bias=False)), nn.Flatten()]
            stages.append(nn.Sequential(*layers, *maybe_dropout(dropout)))
            c_in = widths[i + 1] if i + 1 < len(widths) else c
        self.blocks = nn.ModuleList(stages)
        self.build_vector_head(c_in, lambda inputs: msr_init(nn.Linear(inputs, 1, bias=False)),
                               minibatch, minibatch_group_size, minibatch_kernels, minibatch_kernel_dim)
