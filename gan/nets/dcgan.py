"""DCGAN networks (Radford et al. 2015), sized from the data's resolution.

The generator starts from a ``base`` x ``base`` feature map and doubles it with stride-2 transposed
convolutions until it reaches the resolution: 64 -> 4,8,16,32,64; 32 -> 4,8,16,32; 28 -> 7,14,28. The
discriminator mirrors it with stride-2 convolutions and ends with a base x base convolution to one logit.

On vector data (the 2D toys) there is nothing to convolve: both networks become MLPs with
``VECTOR_DEPTH`` hidden layers of ``width * max_width_multiplier`` units (512 with the defaults), the
networks of the WGAN-GP paper's toy experiments, keeping their normalization, activations and spectral
norm. So loss-defined variants (WGAN, WGAN-GP, LSGAN, SN-GAN) run on any data.
"""
from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor, nn

from gan.nets.base import (Discriminator, Generator, as_shape, check_negative_slope, maybe_dropout, maybe_spectral_norm,
                           output_activation)
from gan.nets.layers import ConditionalBatchNorm, fourier_input, minibatch_layer, refuse_fourier_features_on_images
from gan.utils.errors import ConfigError


VECTOR_DEPTH = 3


NORMS = ("batch", "layer", "none")


def check_norm(kind: str) -> str:
    if kind not in NORMS:
        raise ConfigError(f"unknown normalization {kind!r}; expected one of {', '.join(NORMS)}")
    return kind


def vector_norm(kind: str, features: int) -> nn.Module:
    """The vector-data counterpart of :func:`normalization`."""
    return {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}[kind](features) if check_norm(kind) != "none" else nn.Identity()


def image_geometry(sample_shape: Sequence[int], who: str) -> tuple[int, int, int]:
    """(channels, base size, number of stride-2 stages) for a square image shape."""
    shape = as_shape(sample_shape)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(f"{who} needs square images [channels, size, size] or vectors [features], got data shape {list(shape)}")
    channels, size = shape[0], shape[1]
    base, stages = size, 0
    while base % 2 == 0 and base // 2 >= 4:
        base, stages = base // 2, stages + 1
    if stages == 0:
        raise ConfigError(f"{who} needs an image size divisible by 2 with a base of at least 4, got {size}")
    return channels, base, stages


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. 2015, section 4: weights from N(0, 0.02); the scales of BatchNorm2d and GroupNorm (``norm:
    layer``) from N(1, 0.02). The vector (2D-toy) networks' BatchNorm1d keep torch's init (scale 1, shift 0)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def normalization(kind: str, channels: int) -> nn.Module:
    """``batch`` (DCGAN), ``layer`` (WGAN-GP critic: no batch coupling), or ``none``."""
    if check_norm(kind) == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # normalizes each sample over (C, H, W), affine per channel
    return nn.Identity()


def is_vector(sample_shape: Sequence[int]) -> bool:
    return len(as_shape(sample_shape)) == 1


class DCGANGenerator(Generator):
    """``spectral_norm`` on every (transposed convolution or linear) layer is optional (Zhang et al. 2019
    use it in G); ``num_classes``/``conditioning``/``embedding_dim``: see :class:`Generator`."""

    def __init__(
        self,
        latent_dim: int,
        sample_shape: Sequence[int],
        width: int = 64,
        max_width_multiplier: int = 8,
        norm: str = "batch",
        output: str = "tanh",
        spectral_norm: bool = False,
        num_classes: int | None = None,
        conditioning: str = "embedding",
        embedding_dim: int | None = None,
    ):
        super().__init__(latent_dim, sample_shape, num_classes, conditioning, embedding_dim)
        if self.conditioning == "batchnorm" and norm != "batch":
            raise ConfigError(f"conditional batch norm replaces the generator's batch norm; got norm={norm!r}, expected 'batch'")
        bias = check_norm(norm) == "none"
        vector = is_vector(sample_shape)

        def norm_layer(w):
            if self.conditioning == "batchnorm":
                return ConditionalBatchNorm(w, self.num_classes, vector)
            return vector_norm(norm, w) if vector else normalization(norm, w)

        if vector:
            hidden = width * max_width_multiplier
            sizes = [self.input_dim] + [hidden] * VECTOR_DEPTH
            layers: list[nn.Module] = []
            for f_in, f_out in zip(sizes, sizes[1:]):
                layers += [maybe_spectral_norm(nn.Linear(f_in, f_out, bias=bias), spectral_norm), norm_layer(f_out), nn.ReLU(True)]
            layers += [maybe_spectral_norm(nn.Linear(hidden, self.sample_shape[0]), spectral_norm), output_activation(output)]
            self.net = nn.Sequential(*layers)
            dcgan_init(self)
            return
        channels, base, stages = image_geometry(sample_shape, type(self).__name__)
        widths = [width * min(2**i, max_width_multiplier) for i in reversed(range(stages))]

        def deconv(c_in, c_out, kernel, stride, padding, bias):
            return maybe_spectral_norm(nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding, bias=bias), spectral_norm)

        layers = [deconv(self.input_dim, widths[0], base, 1, 0, bias), norm_layer(widths[0]), nn.ReLU(True)]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [deconv(w_in, w_out, 4, 2, 1, bias), norm_layer(w_out), nn.ReLU(True)]
        layers += [deconv(widths[-1], channels, 4, 2, 1, True), output_activation(output)]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def generate(self, z: Tensor, labels: Tensor | None) -> Tensor:
        h = z if is_vector(self.sample_shape) else z[:, :, None, None]
        for layer in self.net:
            h = layer(h, labels) if isinstance(layer, ConditionalBatchNorm) else layer(h)
        return h


class DCGANDiscriminator(Discriminator):
    """Options: ``dropout`` after every block; ``minibatch`` = ``none`` | ``stddev`` (Karras et al. 2018,
    ``minibatch_group_size``) | ``discrimination`` (Salimans et al. 2016, ``minibatch_kernels`` x
    ``minibatch_kernel_dim``) before the output layer; ``num_classes``/``conditioning``: see
    :class:`Discriminator`. On vector data ``fourier_features`` > 0 feeds the first layer
    :class:`~gan.nets.layers.FourierFeatures` of the input (``fourier_scales``: cycles per unit), since the MLP
    learns the sharp modes of the 2D toys late (spectral bias); images refuse it."""

    def __init__(
        self,
        sample_shape: Sequence[int],
        width: int = 64,
        max_width_multiplier: int = 8,
        norm: str = "batch",
        negative_slope: float = 0.2,
        spectral_norm: bool = False,
        dropout: float = 0.0,
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
        bias = check_norm(norm) == "none"
        negative_slope = check_negative_slope(negative_slope)

        def activation():
            return [nn.LeakyReLU(negative_slope, True), *maybe_dropout(dropout)]

        # Radford et al.: no normalization on the discriminator's input layer.
        if is_vector(sample_shape):
            self.labels_as_channels = False
            hidden = width * max_width_multiplier

            def linear(f_in, f_out, bias=True):
                return maybe_spectral_norm(nn.Linear(f_in, f_out, bias=bias), spectral_norm)

            fourier, inputs = fourier_input(self.sample_shape[0] + self.input_extra, fourier_features, fourier_scales)
            blocks = [nn.Sequential(*fourier, linear(inputs, hidden), *activation())]
            blocks += [nn.Sequential(linear(hidden, hidden, bias), vector_norm(norm, hidden), *activation()) for _ in range(VECTOR_DEPTH - 1)]
            feature_shape: tuple[int, ...] = (hidden,)
            head = linear
        else:
            refuse_fourier_features_on_images(fourier_features, self.sample_shape)
            channels, base, stages = image_geometry(sample_shape, type(self).__name__)
            widths = [width * min(2**i, max_width_multiplier) for i in range(stages)]

            def conv(c_in, c_out, kernel, stride, padding, bias=True):
                return maybe_spectral_norm(nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=bias), spectral_norm)

            blocks = [nn.Sequential(conv(channels + self.input_extra, widths[0], 4, 2, 1), *activation())]
            for w_in, w_out in zip(widths, widths[1:]):
                blocks.append(nn.Sequential(conv(w_in, w_out, 4, 2, 1, bias=bias), normalization(norm, w_out), *activation()))
            feature_shape = (widths[-1], base, base)

            def head(c_in, c_out):
                return conv(c_in, c_out, base, 1, 0)

        self.blocks = nn.ModuleList(blocks)
        self.minibatch = minibatch_layer(minibatch, feature_shape, minibatch_group_size, minibatch_kernels, minibatch_kernel_dim)
        head_channels = feature_shape[0] + (self.minibatch.extra_features if self.minibatch is not None else 0)
        self.head = head(head_channels, 1)
        self.build_conditioning(head_channels * math.prod(feature_shape[1:]), spectral_norm)
        dcgan_init(self)
