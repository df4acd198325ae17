"""CelebA (Liu et al. 2015) in torchvision's layout: ``<root>/celeba/img_align_celeba/*.jpg`` and
``<root>/celeba/list_eval_partition.txt``.

torchvision's CelebA class also requires the four attribute/identity/landmark files and their official
md5 sums, none of which an unconditional GAN uses, so only the images and the partition file are read
here. Preprocessing is the usual GAN one: center crop 178 x 178 (the aligned face, from 178 x 218) then
resize to ``resolution``. The hosting (Google Drive) often refuses automated downloads, so
``download`` defaults to false; when it works, each file is checked against torchvision's md5.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from torch.utils.data import Dataset

from gan.data.errors import DatasetFormatError, DatasetNotFoundError, one_line
from gan.data.image_data import ImageDataModule, ImageFiles
from gan.utils.errors import ConfigError

log = logging.getLogger("gan")

#: list_eval_partition.txt's codes
PARTITIONS = {"train": 0, "valid": 1, "test": 2}
SPLITS = (*PARTITIONS, "all")
LAYOUT = "celeba/img_align_celeba/*.jpg and celeba/list_eval_partition.txt (lines '000001.jpg 0'; 0 train, 1 valid, 2 test)"
DOWNLOADED_FILES = ("img_align_celeba.zip", "list_eval_partition.txt")


def read_partition(path: Path) -> list[tuple[str, int]]:
    """(file name, partition code) per line of list_eval_partition.txt."""
    data = path.read_bytes()
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

    def __init__(self, root: str, resolution: int = 64, channels: int = 3, center_crop: int = 178,
                 split: str = "all", download: bool = False, sample_shape=None, **loader_options):
        if split not in SPLITS:
            raise ConfigError(f"data.split={split!r} is not a CelebA split; expected one of {list(SPLITS)}")
        super().__init__(root, resolution, channels, sample_shape, center_crop=center_crop, **loader_options)
        self.split, self.download = split, bool(download)

    @property
    def folder(self) -> Path:
        return self.root / "celeba"

    def present(self) -> bool:
        return (self.folder / "img_align_celeba").is_dir() and (self.folder / "list_eval_partition.txt").is_file()

    def not_found(self, reason: str = "") -> DatasetNotFoundError:
        return DatasetNotFoundError(
            "celeba", self.folder, LAYOUT,
            f"put the files there or set data.root to the folder that holds celeba/ (now {self.root}); "
            "data.download=true tries Google Drive",
            reason,
        )

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
        entries = read_partition(self.folder / "list_eval_partition.txt")
        wanted = [name for name, code in entries if self.split == "all" or code == PARTITIONS[self.split]]
        on_disk = set(os.listdir(images))
        missing = [name for name in wanted if name not in on_disk]
        if missing:
            raise DatasetFormatError("celeba", images, f"{len(missing)} of the {len(wanted)} {self.split} images "
                                     f"listed in list_eval_partition.txt are missing, e.g. {missing[0]}")
        if not wanted:
            raise DatasetFormatError("celeba", self.folder / "list_eval_partition.txt", f"no image is in split {self.split!r}")
        return ImageFiles([images / name for name in wanted], self.transform)
