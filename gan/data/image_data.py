"""What every resizable image data set shares: ``resolution`` and ``channels`` decide the sample shape,
a torchvision transform maps each PIL image to [-1, 1], and the data is loaded once in ``setup``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image
from torch.utils.data import Dataset

from gan.data.base import GANDataModule
from gan.data.transforms import image_transform, pil_mode
from gan.utils.errors import DataError, one_line


#: what PIL raises for a file it cannot decode (not an image, truncated, a decompression bomb)
UNREADABLE_IMAGE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


class ImageFiles(Dataset):
    """Image files read with PIL and transformed; every label is -1 (unlabelled)."""

    def __init__(self, paths: list[Path], transform: Callable, min_side: int | None = None):
        #: the smallest side an image may have (CelebA's center crop: smaller ones were padded with black)
        self.paths, self.transform, self.min_side = paths, transform, min_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        path = self.paths[index]
        try:
            image = Image.open(path)
            image.load()  # decoded here, so a file that cannot be read is named, not found in the transform
        except UNREADABLE_IMAGE as error:
            # a file listed by the data set (CelebA's partition file) but corrupt: image folders skip such files
            # when they are set up, a list of 200k files is not decoded in advance
            raise DataError(f"cannot read image {path} ({type(error).__name__}: {one_line(error)}); replace it, or "
                            "remove it from the data set") from None
        with image:
            if self.min_side is not None and min(image.size) < self.min_side:
                # only the first file is checked before training (a header each of 200k files is not read in advance);
                # a smaller one later trained as a mostly black image, without a word (an audit)
                raise DataError(f"image {path} is {image.size[0]}x{image.size[1]}, smaller than data.center_crop="
                                f"{self.min_side}, which would pad it with black; replace it, or set data.center_crop=null "
                                "for images that are already cropped")
            return self.transform(image), -1


class ImageDataModule(GANDataModule):
    #: the name used in messages and logs (the config file's name)
    dataset_name = "images"

    def __init__(self, root: str | os.PathLike, resolution: int, channels: int,
                 sample_shape: Sequence[int] | None = None, center_crop: int | None = None, **loader_options):
        pil_mode(int(channels))
        shape = (int(channels), int(resolution), int(resolution))
        super().__init__(self.require_shape(sample_shape or shape, shape, self.dataset_name), **loader_options)
        self.root = Path(root)
        self.resolution, self.channels = int(resolution), int(channels)
        self.transform = image_transform(self.resolution, self.channels, center_crop)

    @property
    def name(self) -> str:
        return self.dataset_name

    @property
    def folder(self) -> Path:
        """Where the files are read from, as messages name it."""
        return self.root

    def load(self) -> Dataset:
        """The training set, yielding (image in [-1, 1], label or -1); raises DatasetNotFoundError/DatasetFormatError."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = self.require_samples(self.load(), self.folder)
