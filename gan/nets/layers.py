"""Layers the networks share: minibatch layers for the discriminator, class conditioning for both networks.

Minibatch layers let the discriminator see statistics of the whole batch, so a generator that collapses
to a few modes produces a batch that is easy to tell apart. Both append features to each sample: extra
constant channels for (N, C, H, W) maps, extra entries for (N, F) vectors, so the layer after them only
needs ``extra_features`` more inputs.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan.utils.errors import ConfigError


def append_features(x: Tensor, extra: Tensor) -> Tensor:
    """``x`` (N, C, H, W) or (N, F) with per-sample ``extra`` (N, E) appended as E channels / entries."""
    if x.dim() == 4:
        return torch.cat([x, extra[:, :, None, None].expand(-1, -1, x.size(2), x.size(3))], dim=1)
    return torch.cat([x.flatten(1), extra], dim=1)


class MinibatchStdDev(nn.Module):
    """Karras et al. 2018 (ProGAN), section 3: the standard deviation of every feature over a group of
    samples, averaged to one number per group and appended to each sample of the group.

    The group is the largest divisor of the batch size not above ``group_size`` (StyleGAN2 requires the
    batch to be divisible; a divisor keeps odd evaluation batches working).
    """

    extra_features = 1

    def __init__(self, group_size: int = 4):
        super().__init__()
        if int(group_size) < 2:  # one sample has no spread: the layer appended a constant, sqrt(1e-8), to every sample
            raise ConfigError(f"minibatch_group_size must be an integer >= 2 (the samples whose spread is measured), got {group_size}")
        self.group_size = int(group_size)

    def forward(self, x: Tensor) -> Tensor:
        n = x.size(0)
        group = max(g for g in range(1, min(self.group_size, n) + 1) if n % g == 0)
        grouped = x.reshape(group, n // group, -1).float()  # sample i is in group i % (n // group), as in StyleGAN2
        std = (grouped.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=1)  # one value per group
        return append_features(x, std.to(x.dtype).repeat(group)[:, None])


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016, section 3.2: M_i = f(x_i) T (B kernels of dimension C),
    o(x_i)_b = sum_j exp(-||M_i,b - M_j,b||_1) over the batch (j = i included, as in the paper)."""

    def __init__(self, in_features: int, num_kernels: int = 32, kernel_dim: int = 8):
        super().__init__()
        self.in_features, self.num_kernels, self.kernel_dim = int(in_features), int(num_kernels), int(kernel_dim)
        self.extra_features = self.num_kernels
        self.T = nn.Parameter(torch.randn(self.in_features, self.num_kernels * self.kernel_dim) * 0.1)

    def forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(1)
        if flat.size(1) != self.in_features:
            raise ConfigError(f"MinibatchDiscrimination was built for {self.in_features} features, got {flat.size(1)}")
        m = (flat @ self.T).view(-1, self.num_kernels, self.kernel_dim)
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(dim=3)  # (N, N, B)
        return append_features(x, torch.exp(-l1).sum(dim=1))


def minibatch_layer(kind: str | None, in_shape: tuple[int, ...], group_size: int = 4, num_kernels: int = 32,
                    kernel_dim: int = 8) -> nn.Module | None:
    """The discriminator option ``minibatch``: ``none``, ``stddev`` (Karras 2018) or ``discrimination``
    (Salimans 2016), for features of shape ``in_shape`` (without the batch dimension)."""
    if kind in (None, "none"):
        return None
    if kind == "stddev":
        return MinibatchStdDev(group_size)
    if kind == "discrimination":
        return MinibatchDiscrimination(math.prod(in_shape), num_kernels, kernel_dim)
    raise ConfigError(f"unknown minibatch layer {kind!r}; expected 'none', 'stddev' or 'discrimination'")


class ConditionalBatchNorm(nn.Module):
    """de Vries et al. 2017 / Miyato & Koyama 2018: batch norm without affine parameters, then a per-class
    scale and shift (initialized to the identity). For (N, C, H, W) maps, or (N, C) vectors with ``vector``."""

    def __init__(self, num_features: int, num_classes: int, vector: bool = False):
        super().__init__()
        self.norm = (nn.BatchNorm1d if vector else nn.BatchNorm2d)(num_features, affine=False)
        self.scale = nn.Embedding(num_classes, num_features)
        self.shift = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        shape = (x.size(0), -1) + (1,) * (x.dim() - 2)
        return self.norm(x) * self.scale(labels).view(shape) + self.shift(labels).view(shape)


def at_least_fp32(x: Tensor) -> Tensor:
    """``x`` in fp32 if it is in a lower precision (an fp64 network stays fp64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


class _ConcatColumns(torch.autograd.Function):
    """``torch.cat(parts, dim=1)`` whose backward splits the gradient into the parts' columns in one op. The
    gradients are the same as ``torch.cat``'s; what differs is the backward of the backward, which R1/R2 run
    through D: ``torch.cat``'s backward narrows the gradient once per part, and the gradient of each narrowed
    slice is a zero tensor the size of the whole concatenation with the slice copied in (three 2,048 x 130 zero
    fills per r3gan grid step, ~1.8 of its ~24 ms on a 2-core CPU), where a split's is one concatenation."""

    @staticmethod
    def forward(ctx, *parts: Tensor) -> Tensor:
        ctx.widths = [part.size(1) for part in parts]
        return torch.cat(parts, dim=1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad.split(ctx.widths, dim=1)


class FourierFeatures(nn.Module):
    """Random Fourier features of a vector input (Tancik et al. 2020): ``[x, sin(2 pi x B), cos(2 pi x B)]``.

    An MLP learns low frequencies first (spectral bias), so a plain MLP discriminator resolves sharp modes of
    2D data late; sinusoids of the input give it high frequencies from the start. ``B`` has ``features``
    columns of Gaussian directions whose scales (cycles per unit of input) are spread log-uniformly over
    ``scales`` = (lowest, highest): the low ones carry where mass is missing across the plane, the high ones
    how sharp each mode is. ``B`` is a buffer drawn from its own seeded generator, so it is saved in
    checkpoints and the global RNG stream (network initialisation) is untouched.
    """

    def __init__(self, in_features: int, features: int, scales: tuple[float, float] = (0.5, 5.0), seed: int = 0):
        super().__init__()
        if int(features) < 1:
            raise ConfigError(f"fourier_features={features}: expected an integer >= 1 (sinusoids of the input), or 0 (none)")
        if len(scales) != 2 or not 0 < float(scales[0]) <= float(scales[1]):  # [] was "not enough values to unpack"
            raise ConfigError(f"fourier_scales={list(scales)}: expected two numbers [lowest, highest] with "
                              "0 < lowest <= highest (cycles per unit of input)")
        low, high = (float(s) for s in scales)
        rng = torch.Generator().manual_seed(int(seed))
        cycles = torch.logspace(math.log10(low), math.log10(high), int(features))
        directions = torch.randn(int(in_features), int(features), generator=rng)
        self.register_buffer("frequencies", 2 * math.pi * cycles * directions / directions.norm(dim=0, keepdim=True))
        self.out_features = int(in_features) + 2 * int(features)

    def forward(self, x: Tensor) -> Tensor:
        # in fp32 whatever autocast says: at 5 cycles per unit the phase at x = 4 is ~125 rad, where bf16's
        # spacing is 0.5 rad, so a bf16 product would erase the high frequencies this layer is for
        with torch.autocast(x.device.type, enabled=False):
            x = at_least_fp32(x)
            phase = x @ self.frequencies.to(x.dtype)
            return _ConcatColumns.apply(x, phase.sin(), phase.cos())


def fourier_input(in_features: int, features: int, scales: Sequence[float]) -> tuple[list[nn.Module], int]:
    """The layers that put :class:`FourierFeatures` of a vector input before a discriminator's first layer, and the
    width that layer then takes: none and ``in_features`` for ``features`` = 0 (a negative count is refused by the
    layer, not taken as none)."""
    if features == 0:
        return [], in_features
    layer = FourierFeatures(in_features, features, tuple(scales))
    return [layer], layer.out_features


def refuse_fourier_features_on_images(fourier_features: int, sample_shape: Sequence[int]) -> None:
    """A convolutional discriminator has no place for sinusoids of its input: the option would be ignored."""
    if fourier_features != 0:
        raise ConfigError(f"fourier_features={fourier_features}: Fourier features of the input are for vector data "
                          f"(the 2D toys), not images of shape {list(sample_shape)}; expected 0")


class FullPrecisionLinear(nn.Linear):
    """A linear layer that autocast leaves in fp32 (same parameters and state-dict keys as ``nn.Linear``). For
    the output of a generator of low-dimensional coordinates (the 2D toys): bf16's 8 significant bits space
    values near 4 by 0.03, over half of a grid mode's std of 0.05, while this layer's cost is negligible."""

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(at_least_fp32(x))


def one_hot(labels: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    return F.one_hot(labels, num_classes).to(dtype)
