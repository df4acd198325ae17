"""DCGAN networks (Radford et al. 2015), sized from the data's resolution.

The generator starts from a ``base`` x ``base`` feature map and doubles it with stride-2 transposed
convolutions until it reaches the resolution: 64 -> 4,8,16,32,64; 32 -> 4,8,16,32; 28 -> 7,14,28. The
discriminator mirrors it with stride-2 convolutions and ends with a base x base convolution to one logit.
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from gan.nets.base import Discriminator, Generator, as_shape, maybe_spectral_norm, output_activation


def image_geometry(sample_shape: Sequence[int], who: str) -> tuple[int, int, int]:
    """(channels, base size, number of stride-2 stages) for a square image shape."""
    shape = as_shape(sample_shape)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(
            f"{who} needs square images of shape [channels, size, size], got data shape {list(shape)}; "
            "use an MLP model (model=gan) for non-image data"
        )
    channels, size = shape[0], shape[1]
    base, stages = size, 0
    while base % 2 == 0 and base // 2 >= 4:
        base, stages = base // 2, stages + 1
    if stages == 0:
        raise ValueError(f"{who} needs an image size divisible by 2 with a base of at least 4, got {size}")
    return channels, base, stages


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. 2015, section 4: weights from N(0, 0.02); BatchNorm scales from N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def normalization(kind: str, channels: int) -> nn.Module:
    """``batch`` (DCGAN), ``layer`` (WGAN-GP critic: no batch coupling), or ``none``."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # normalizes each sample over (C, H, W), affine per channel
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalization {kind!r}; expected 'batch', 'layer' or 'none'")


class DCGANGenerator(Generator):
    def __init__(
        self,
        latent_dim: int,
        sample_shape: Sequence[int],
        width: int = 64,
        max_width_multiplier: int = 8,
        norm: str = "batch",
        output: str = "tanh",
    ):
        super().__init__(latent_dim, sample_shape)
        channels, base, stages = image_geometry(sample_shape, type(self).__name__)
        widths = [width * min(2**i, max_width_multiplier) for i in reversed(range(stages))]
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(self.latent_dim, widths[0], base, 1, 0, bias=norm == "none"),
            normalization(norm, widths[0]),
            nn.ReLU(True),
        ]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=norm == "none"), normalization(norm, w_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), output_activation(output)]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def generate(self, z: Tensor) -> Tensor:
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(Discriminator):
    def __init__(
        self,
        sample_shape: Sequence[int],
        width: int = 64,
        max_width_multiplier: int = 8,
        norm: str = "batch",
        negative_slope: float = 0.2,
        spectral_norm: bool = False,
    ):
        super().__init__(sample_shape)
        channels, base, stages = image_geometry(sample_shape, type(self).__name__)
        widths = [width * min(2**i, max_width_multiplier) for i in range(stages)]

        def conv(c_in, c_out, kernel, stride, padding, bias=True):
            return maybe_spectral_norm(nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=bias), spectral_norm)

        # Radford et al.: no normalization on the discriminator's input layer.
        layers: list[nn.Module] = [conv(channels, widths[0], 4, 2, 1), nn.LeakyReLU(negative_slope, True)]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [conv(w_in, w_out, 4, 2, 1, bias=norm == "none"), normalization(norm, w_out), nn.LeakyReLU(negative_slope, True)]
        layers += [conv(widths[-1], 1, base, 1, 0)]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def classify(self, x: Tensor) -> Tensor:
        return self.net(x)
