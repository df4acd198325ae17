"""Any folder of images, searched recursively (png, jpg, webp and the other extensions torchvision's
ImageFolder accepts), unlabelled, resized and center-cropped to ``resolution``.

Every file is decoded once in ``setup`` (JPEGs at reduced scale, in a thread pool, since PIL releases
the GIL while decoding) so that an unreadable or truncated file is dropped up front with one warning
that counts them, instead of crashing a DataLoader worker in the middle of an epoch.
"""
from __future__ import annotations

import logging
import os
from typing import NamedTuple
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from gan.data.errors import DatasetNotFoundError
from gan.data.image_data import UNREADABLE_IMAGE, ImageDataModule, ImageFiles
from gan.data.transforms import FLOAT_MODES, pil_mode
from gan.utils.errors import ConfigError, DataError

log = logging.getLogger("gan")

LAYOUT = f"image files ({', '.join(ext.lstrip('.') for ext in IMG_EXTENSIONS)}) anywhere below it"


#: PIL modes with an alpha channel, which the conversion to RGB or L drops
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def find_images(folder: Path) -> list[Path]:
    """Image files below ``folder`` by extension (any case), in a stable order, each folder read once. Hidden files
    and folders (names starting with ".") are left out, with a warning: Jupyter's ``.ipynb_checkpoints/`` holds
    copies of images, and macOS's ``._name.png`` files are not images (an audit: both were read)."""
    found, seen, hidden, unlisted = [], set(), [], []
    for directory, subdirectories, names in os.walk(folder, followlinks=True, onerror=unlisted.append):
        # links are followed (a folder of links to data sets is common), so a link back up the tree would
        # be walked again and again until the OS gives up on the path: each folder counts once
        real = os.path.realpath(directory)
        if real in seen:
            subdirectories.clear()
            continue
        seen.add(real)
        hidden += [Path(directory) / name for name in names if name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)]
        hidden += [Path(directory) / name for name in subdirectories if name.startswith(".")
                   and holds_images(Path(directory) / name)]  # a .git or .cache without images is not worth a word
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        found += [Path(directory) / name for name in sorted(names)
                  if name.lower().endswith(IMG_EXTENSIONS) and not name.startswith(".")]
    if unlisted:  # os.walk skipped them without a word (an audit: a subfolder without read permission)
        examples = ", ".join(f"{error.filename} ({error.strerror})" for error in unlisted[:2])
        log.warning("image_folder: cannot list %d folder%s under %s, whose images are left out: %s%s", len(unlisted),
                    "s" if len(unlisted) > 1 else "", folder, examples, ", ..." if len(unlisted) > 2 else "")
    if hidden:
        examples = ", ".join(str(path.relative_to(folder)) for path in sorted(hidden)[:3])
        log.warning("image_folder: left out %d hidden image files and folders of images under %s (names starting with "
                    "'.': %s%s)",
                    len(hidden), folder, examples, ", ..." if len(hidden) > 3 else "")
    return found


def holds_images(folder: Path) -> bool:
    """Whether ``folder`` itself holds an image file (by extension), without walking further down."""
    try:
        return any(name.lower().endswith(IMG_EXTENSIONS) for name in os.listdir(folder))
    except OSError:
        return False


class Decoded(NamedTuple):
    """What setting an image folder up learns of a file it decoded."""

    mode: str  # PIL's
    transparent: bool  # an alpha channel, or a colour or palette entry marked transparent (PNG's tRNS)
    shorter_side: int  # in pixels, before any resize
    beyond_sixteen_bits: tuple[int, int] | None  # the extremes of 32-bit integer pixels (mode I) outside 0-65535


def decodes(path: Path, mode: str, size: int) -> Decoded | None:
    """What the file is when PIL can decode all of it (a truncated JPEG only fails when its last scan is read), else
    None."""
    try:
        with Image.open(path) as image:
            shorter_side = min(image.size)  # draft() may shrink a JPEG's decoded size
            image.draft(mode, (size, size))
            image.load()
            extremes = image.getextrema() if image.mode == "I" else None
            wide = extremes if extremes and (extremes[0] < 0 or extremes[1] > 65535) else None
            return Decoded(image.mode, image.mode in ALPHA_MODES or "transparency" in image.info, shorter_side, wide)
    except UNREADABLE_IMAGE:
        return None


class ImageFolderDataModule(ImageDataModule):
    dataset_name = "image_folder"

    def __init__(self, path: str, root: str | None = None, resolution: int = 64, channels: int = 3,
                 sample_shape=None, **loader_options):
        if not path or not str(path).strip():  # Path("") is the working directory: it would train on whatever is there
            raise ConfigError(f"data.path={path!r} is not a folder; expected the folder that holds the images, "
                              "e.g. data.path=/folder/with/images")
        self.require_classes(loader_options.pop("num_classes", None), None, "image_folder")
        super().__init__(root or path, resolution, channels, sample_shape, **loader_options)
        self.path = Path(path)

    def not_found(self, reason: str) -> DatasetNotFoundError:
        return DatasetNotFoundError("image_folder", self.path, LAYOUT, "set data.path=/folder/with/images", reason)

    def prepare_data(self) -> None:
        if not self.path.is_dir():
            raise self.not_found("a file, not a folder" if self.path.exists() else "no such folder")

    def load(self) -> Dataset:
        self.prepare_data()
        candidates = find_images(self.path)
        if not candidates:
            raise self.not_found("the folder holds no image files")
        workers = min(8, os.cpu_count() or 1)
        mode = pil_mode(self.channels)
        with ThreadPoolExecutor(workers) as pool:
            modes = list(pool.map(lambda path: decodes(path, mode, self.resolution), candidates))
        floating = next((path for path, found in zip(candidates, modes) if found and found.mode in FLOAT_MODES), None)
        if floating is not None:  # converted as they are, values in [0, 1] would all become black
            raise DataError(f"image_folder: {floating} holds floating-point pixels (PIL mode F), whose range cannot be "
                            "known; expected 8- or 16-bit images (e.g. PNG or JPEG)")
        wide = next(((path, found.beyond_sixteen_bits) for path, found in zip(candidates, modes)
                     if found and found.beyond_sixteen_bits), None)
        if wide is not None:  # read as 16-bit values, they would clip to black or white (an audit)
            raise DataError(f"image_folder: {wide[0]} holds 32-bit integer pixels (PIL mode I) from {wide[1][0]} to "
                            f"{wide[1][1]}, beyond 16 bits, whose scale cannot be known; expected 8- or 16-bit images "
                            "(e.g. PNG or JPEG)")
        paths = [path for path, found in zip(candidates, modes) if found]
        skipped = [path for path, found in zip(candidates, modes) if not found]
        if not paths:
            raise self.not_found(f"none of its {len(candidates)} image files can be read or decoded (e.g. "
                                 f"{candidates[0].relative_to(self.path)})")
        if skipped:
            examples = ", ".join(str(path.relative_to(self.path)) for path in skipped[:3])
            log.warning("image_folder: skipped %d of %d files under %s that cannot be read or decoded (%s%s)",
                        len(skipped), len(candidates), self.path, examples, ", ..." if len(skipped) > 3 else "")
        with_alpha = [path for path, found in zip(candidates, modes) if found and found.transparent]
        if with_alpha:  # converted to RGB or L, a transparent pixel trains as whatever colour it holds (an audit)
            log.warning("image_folder: %d of the %d images have transparency (an alpha channel or a transparent colour: "
                        "%s%s), which is dropped: a transparent pixel trains as the colour it holds; composite them onto "
                        "a background first to train on what they show", len(with_alpha), len(paths),
                        with_alpha[0].relative_to(self.path), ", ..." if len(with_alpha) > 1 else "")
        smaller = [(path, found.shorter_side) for path, found in zip(candidates, modes)
                   if found and found.shorter_side < self.resolution]
        if smaller:  # upscaled by the resize, they train blurred, without a word (an audit)
            log.warning("image_folder: %d of the %d images are smaller than data.resolution=%d on their shorter side "
                        "(%s, %d pixels%s), so they are upscaled and train blurred; expected images of at least %d pixels, "
                        "or a lower data.resolution", len(smaller), len(paths), self.resolution,
                        smaller[0][0].relative_to(self.path), smaller[0][1], ", ..." if len(smaller) > 1 else "",
                        self.resolution)
        log.info("image_folder: %d images under %s", len(paths), self.path)
        return ImageFiles(paths, self.transform)
