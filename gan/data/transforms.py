"""PIL image -> float tensor [C, resolution, resolution] in [-1, 1], the range of tanh generators."""
from __future__ import annotations

from torch import Tensor
from torchvision.transforms import v2

from gan.utils.errors import ConfigError

#: PIL mode for each supported channel count
PIL_MODES = {1: "L", 3: "RGB"}


def pil_mode(channels: int) -> str:
    if channels not in PIL_MODES:
        raise ConfigError(f"data.channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    return PIL_MODES[channels]


def uint8_to_unit_range(images: Tensor) -> Tensor:
    """uint8 in [0, 255] -> float32 in [-1, 1], as ``x / 127.5 - 1``."""
    return images.float().div(127.5).sub(1.0)


class ConvertMode:
    """PIL ``convert`` as a picklable transform (DataLoader workers may be spawned, not forked)."""

    def __init__(self, mode: str):
        self.mode = mode

    def __call__(self, image):
        return image if image.mode == self.mode else image.convert(self.mode)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.mode!r})"


def image_transform(resolution: int, channels: int, center_crop: int | None = None) -> v2.Compose:
    """Optional center crop of the original (CelebA's 178 px face box), resize of the shorter side to
    ``resolution`` and center crop to a square, then ``x / 127.5 - 1``.

    Resize and crop are skipped by torchvision when the image already has the target size, so data at
    its native resolution passes through unchanged.
    """
    if int(resolution) < 1:
        raise ConfigError(f"data.resolution must be a positive number of pixels, got {resolution}")
    mode = pil_mode(int(channels))
    steps: list = [ConvertMode(mode)]
    if center_crop:
        steps.append(v2.CenterCrop(int(center_crop)))
    steps += [
        v2.Resize(int(resolution), antialias=True),
        v2.CenterCrop(int(resolution)),
        v2.PILToTensor(),
        # one op instead of ToDtype + Normalize: a third of the per-image cost on MNIST, and the same
        # floats as the embedded digits
        uint8_to_unit_range,
    ]
    return v2.Compose(steps)
