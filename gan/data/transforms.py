"""PIL image -> float tensor [C, resolution, resolution] in [-1, 1], the range of tanh generators."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps
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


#: PIL modes of more than 8 bits per integer pixel (16-bit PNGs and TIFFs): PIL's ``convert`` clips them to 255,
#: which turns a 16-bit image white
WIDE_INTEGER_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
#: floating-point pixels, whose range (0-1? 0-255? calibrated units?) a loader cannot know
FLOAT_MODES = ("F",)


def to_eight_bits(image):
    """A 16-bit grayscale image as 8 bits: the top byte of each pixel, as torchvision's uint16 -> uint8 conversion
    does (32-bit integer pixels, mode I, are taken as 16-bit values, which is how PIL opens some 16-bit files; an
    image folder refuses mode I images whose values leave 0-65535)."""
    pixels = np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8
    return Image.fromarray(pixels.astype(np.uint8), "L")


class ConvertMode:
    """PIL ``convert`` as a picklable transform (DataLoader workers may be spawned, not forked); 16-bit pixels are
    scaled to 8 bits first, and an image read from a file is turned upright by its EXIF orientation first."""

    def __init__(self, mode: str):
        self.mode = mode

    def __call__(self, image):
        if image.format is not None:  # read from a file: a camera's photo stored sideways trains as an image viewer shows
            # it (an audit); arrays made into images (MNIST, CIFAR-10) have no EXIF to read
            image = ImageOps.exif_transpose(image)
        if image.mode in WIDE_INTEGER_MODES:
            image = to_eight_bits(image)
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
