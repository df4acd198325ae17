"""CelebA (Liu et al. 2015) in torchvision's layout: ``<root>/celeba/img_align_celeba/*.jpg`` and
``<root>/celeba/list_eval_partition.txt``.

torchvision's CelebA class also requires the four attribute/identity/landmark files and their official
md5 sums, none of which an unconditional GAN uses, so only the images and the partition file are read
here. Preprocessing is the usual GAN one: center crop 178 x 178 (the aligned face, from 178 x 218) then
resize to ``resolution``; ``center_crop: null`` resizes the whole image, for copies that are already cropped
(a first image smaller than the crop is refused: torchvision would pad it with black). The hosting (Google
Drive) often refuses automated downloads, so ``download`` defaults to false; when it works, each file is
checked against torchvision's md5.
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset

from gan.data.errors import DatasetFormatError, DatasetNotFoundError, one_line
from gan.data.image_data import UNREADABLE_IMAGE, ImageDataModule, ImageFiles
from gan.utils.errors import ConfigError, DataError

log = logging.getLogger("gan")

#: list_eval_partition.txt's codes
PARTITIONS = {"train": 0, "valid": 1, "test": 2}
SPLITS = (*PARTITIONS, "all")
#: the size of an aligned face, width x height
ALIGNED_SIZE = (178, 218)
LAYOUT = "celeba/img_align_celeba/*.jpg and celeba/list_eval_partition.txt (lines '000001.jpg 0'; 0 train, 1 valid, 2 test)"
DOWNLOADED_FILES = ("img_align_celeba.zip", "list_eval_partition.txt")


def read_partition(path: Path) -> list[tuple[str, int]]:
    """(file name, partition code) per line of list_eval_partition.txt."""
    try:
        data = path.read_bytes()
    except OSError as error:  # a PermissionError traceback (an audit)
        raise DataError(f"cannot read {path} ({error.strerror or one_line(error)}); expected a file this user can read") from None
    try:
        text = data.decode("utf-8")  # not the locale's encoding: the file is ASCII wherever it is read
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DatasetFormatError("celeba", path, f"line {line} is not UTF-8 text, expected text lines '<image file> <0|1|2>'") from None
    entries, first_line = [], {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in {"0", "1", "2"}:
            raise DatasetFormatError("celeba", path, f"line {number} is {line.strip()!r}, expected '<image file> <0|1|2>'")
        if fields[0] in first_line:  # it would be drawn twice as often as the others, silently
            raise DatasetFormatError("celeba", path, f"line {number} lists {fields[0]} again (first on line "
                                     f"{first_line[fields[0]]}), expected each image once")
        first_line[fields[0]] = number
        entries.append((fields[0], int(fields[1])))
    return entries


def download_celeba(folder: Path) -> None:
    """The aligned images and the partition file, with torchvision's Google Drive ids and md5 sums."""
    from torchvision.datasets import CelebA
    from torchvision.datasets.utils import download_file_from_google_drive, extract_archive

    for file_id, md5, filename in CelebA.file_list:
        if filename in DOWNLOADED_FILES:
            download_file_from_google_drive(file_id, str(folder), filename, md5)
    extract_archive(str(folder / "img_align_celeba.zip"))


class CelebADataModule(ImageDataModule):
    dataset_name = "celeba"

    def __init__(self, root: str, resolution: int = 64, channels: int = 3, center_crop: int | None = 178,
                 split: str = "all", download: bool = False, sample_shape=None, **loader_options):
        if split not in SPLITS:
            raise ConfigError(f"data.split={split!r} is not a CelebA split; expected one of {list(SPLITS)}")
        if center_crop is not None and int(center_crop) < 1:
            raise ConfigError(f"data.center_crop={center_crop} is not a crop; expected a positive number of pixels "
                              "(178: the face of an aligned 178x218 image), or null for images that are already cropped")
        self.require_classes(loader_options.pop("num_classes", None), None, "celeba")  # its attributes are no classes
        super().__init__(root, resolution, channels, sample_shape, center_crop=center_crop, **loader_options)
        self.split, self.download = split, bool(download)
        #: the side of the central square cut from each image before resizing; None: the whole image
        self.center_crop = None if center_crop is None else int(center_crop)

    @property
    def folder(self) -> Path:
        return self.root / "celeba"

    def present(self) -> bool:
        return (self.folder / "img_align_celeba").is_dir() and (self.folder / "list_eval_partition.txt").is_file()

    def not_found(self, reason: str = "") -> DatasetNotFoundError:
        fix = (f"put the files there or set data.root to the folder that holds celeba/ (now {self.root}); "
               "data.download=true tries Google Drive")
        if not reason:  # which of the two is missing, and the archive left packed (a data audit: one line for all)
            images, partition = self.folder / "img_align_celeba", self.folder / "list_eval_partition.txt"
            problems = []
            if not images.is_dir():
                problems.append(f"{images.name} is a file, not a folder" if images.exists() else f"missing {images.name}/")
            if not partition.is_file():
                problems.append(f"missing {partition.name}")
            reason = "; ".join(problems)
            archive = self.folder / "img_align_celeba.zip"
            if not images.exists() and archive.is_file():
                reason += f"; the archive {archive.name} is there, not extracted"
                fix = f"extract it where it is (unzip {archive} -d {self.folder}); {fix}"
        return DatasetNotFoundError("celeba", self.folder, LAYOUT, fix, reason)

    def prepare_data(self) -> None:
        if self.present():
            return
        if not self.download:
            raise self.not_found()
        log.info("Downloading CelebA to %s", self.folder)
        try:
            download_celeba(self.folder)
        except (OSError, RuntimeError) as error:
            raise self.not_found(f"download failed: {one_line(error)}") from None

    def load(self) -> Dataset:
        if not self.present():
            raise self.not_found()
        images = self.folder / "img_align_celeba"
        partition = self.folder / "list_eval_partition.txt"
        entries = read_partition(partition)
        if not entries:
            raise DatasetFormatError("celeba", partition, "it lists no image, expected lines '<image file> <0|1|2>'")
        wanted = [name for name, code in entries if self.split == "all" or code == PARTITIONS[self.split]]
        if not wanted:
            raise self.empty_split(partition, entries)
        try:
            on_disk = set(os.listdir(images))
        except OSError as error:
            raise DataError(f"cannot list {images} ({error.strerror or one_line(error)}); expected a folder this user can "
                            "read") from None
        missing = [name for name in wanted if name not in on_disk]
        if missing:
            problem = (f"{len(missing)} of the {len(wanted)} {self.split} images listed in list_eval_partition.txt are "
                       f"missing, e.g. {missing[0]}")
            with os.scandir(images) as entries_on_disk:
                nested = next((Path(entry.path) for entry in entries_on_disk
                               if entry.is_dir() and (Path(entry.path) / missing[0]).is_file()), None)
            if nested is None:
                raise DatasetFormatError("celeba", images, problem)
            # img_align_celeba.zip holds a folder img_align_celeba/: extracted into one of that name, it is one too deep
            raise DatasetFormatError("celeba", images, f"{problem}, which is in img_align_celeba/{nested.name}/, one "
                                     "folder too deep", fix=f"move the images of {nested} up into {images}")
        self.check_image_size(images / wanted[0])
        return ImageFiles([images / name for name in wanted], self.transform, min_side=self.center_crop)

    def empty_split(self, partition: Path, entries: list[tuple[str, int]]) -> ConfigError:
        """The requested split lists no image: which splits the partition file has."""
        counts = Counter(code for _, code in entries)
        present = [name for name, code in PARTITIONS.items() if counts[code]]
        listed = " and ".join(f"{name} ({counts[PARTITIONS[name]]:,} image{'s' if counts[PARTITIONS[name]] > 1 else ''})"
                              for name in present)
        return ConfigError(f"data.split={self.split!r}: {partition} lists no image in split {self.split!r} (code "
                           f"{PARTITIONS[self.split]}), only {listed}; set data.split to {', '.join(present)} or all")

    def check_image_size(self, path: Path) -> None:
        """The first image must hold the center crop: torchvision's CenterCrop pads a smaller image with black
        (a 64x64 copy cropped at 178 was 86% black), silently. What the resize gets (the crop, or without one the
        image) smaller than ``resolution`` is upscaled and trains blurred: said, as image_folder says it (a README
        walk-through found CelebA silent). Only the header is read."""
        try:
            with Image.open(path) as image:
                width, height = image.size
        except UNREADABLE_IMAGE:
            return  # named in one line when it is drawn (ImageFiles)
        if self.center_crop is not None and min(width, height) < self.center_crop:
            aligned = "x".join(map(str, ALIGNED_SIZE))
            raise ConfigError(f"celeba: {path} is {width}x{height}, smaller than data.center_crop={self.center_crop} "
                              f"(CelebA's aligned faces are {aligned}); set data.center_crop=null for images that are "
                              "already cropped")
        resized = min(width, height) if self.center_crop is None else self.center_crop  # the image holds the crop
        if resized < self.resolution:
            what = f"{path.name} is {width}x{height}" if self.center_crop is None else f"data.center_crop={self.center_crop}"
            log.warning("celeba: %s, smaller than data.resolution=%d on its shorter side, so the images are upscaled and "
                        "train blurred; expected images (or a crop) of at least %d pixels, or a lower data.resolution",
                        what, self.resolution, self.resolution)
