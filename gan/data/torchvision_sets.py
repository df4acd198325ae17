"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision's dataset classes.

torchvision downloads on first use (``download=true``) and skips the network when the files are already
there. Its CIFAR10 class also insists on the official md5 sum of every batch file, which rejects a
re-packed or test copy with "Dataset not found or corrupted"; ``CIFAR10Files`` keeps its reader but
checks that the files exist. A real download is still verified, against the archive's md5 (``tgz_md5``).
"""
from __future__ import annotations

import logging
import math
import os
import pickle
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, Dataset
from torchvision import datasets

from gan.data.base import GathersBatches
from gan.data.errors import DatasetFormatError, DatasetNotFoundError, one_line
from gan.data.image_data import ImageDataModule
from gan.data.transforms import uint8_to_unit_range
from gan.utils.errors import ConfigError

log = logging.getLogger("gan")

#: an idx file's element type for unsigned bytes (the third byte of its magic number)
IDX_UBYTE = 0x08
SPLITS = {"train": (True,), "test": (False,), "all": (True, False)}
#: what torchvision's readers raise on a file they cannot parse (bad idx magic numbers are bare asserts)
PARSE_ERRORS = (AssertionError, ValueError, TypeError, KeyError, IndexError, RuntimeError, OSError, EOFError, pickle.UnpicklingError)


class CIFAR10Files(datasets.CIFAR10):
    """torchvision's CIFAR-10 reader, checking that the batch files exist rather than their official md5 sums."""

    train_list = [[name, None] for name, _ in datasets.CIFAR10.train_list]
    test_list = [[name, None] for name, _ in datasets.CIFAR10.test_list]
    meta = {**datasets.CIFAR10.meta, "md5": None}


def mnist_files(dataset_class: type[datasets.MNIST]) -> list[str]:
    """The uncompressed idx files torchvision reads, relative to ``root``."""
    names = [os.path.splitext(os.path.basename(url))[0] for url, _ in dataset_class.resources]
    return [f"{dataset_class.__name__}/raw/{name}" for name in names]


def cifar_files(dataset_class: type[datasets.CIFAR10]) -> list[str]:
    names = [name for name, _ in dataset_class.train_list + dataset_class.test_list] + [dataset_class.meta["filename"]]
    return [f"{dataset_class.base_folder}/{name}" for name in names]


def cifar_batch_problem(path: Path, batch: dict, num_classes: int = 10) -> str | None:
    """A batch's rows must be 32 x 32 RGB pixels as uint8, one integer label in 0..num_classes - 1 each:
    torchvision reshapes whatever it gets to [-1, 3, 32, 32], so rows of another width become scrambled images
    and floats fail mid-training; labels are taken as they are (string labels failed in a conditional model,
    1.5 became class 1)."""
    data, labels = batch["data"], batch.get("labels")
    has_labels = isinstance(labels, (list, tuple, np.ndarray))
    if isinstance(data, np.ndarray):
        if data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072 and has_labels and len(labels) == len(data):
            return cifar_labels_problem(path, labels, num_classes)
        found = f"{data.dtype} data of shape {list(data.shape)}"
    else:
        found = f"data of type {type(data).__name__}"
    found += f" and {len(labels)} labels" if has_labels else " and no 'labels' list"
    return f"{path.name} holds {found}, expected 'data' as N x 3072 uint8 and N 'labels'"


def cifar_labels_problem(path: Path, labels: list | tuple | np.ndarray, num_classes: int) -> str | None:
    """Labels must be integers (Python's or numpy's; not bools, which are no class) from 0 to num_classes - 1."""
    expected = f"expected N integer 'labels' from 0 to {num_classes - 1}"
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            return f"{path.name} holds labels of dtype {labels.dtype} and shape {list(labels.shape)}, {expected}"
        values = labels
    else:
        wrong = next((i for i, label in enumerate(labels)
                      if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer))), None)
        if wrong is not None:
            label = labels[wrong]
            return f"{path.name} holds labels of type {type(label).__name__} ({label!r} at index {wrong}), {expected}"
        values = np.asarray(labels, dtype=object)
    outside = np.flatnonzero((values < 0) | (values >= num_classes)) if len(values) else []
    if len(outside):
        return f"{path.name} holds label {int(values[outside[0]])} at index {int(outside[0])}, {expected}"
    return None


def idx_problem(path: Path, image_size: tuple[int, int] = (28, 28)) -> str | None:
    """The idx header check torchvision does with bare asserts, with a message: magic 0x0803 for the
    [N, 28, 28] image files and 0x0801 for the [N] label files, then one byte per element. Images of another
    size are refused: at data.resolution=28 they were resized to 28 silently, and a 0-pixel side failed in numpy."""
    dims = 3 if "images" in path.name else 1
    with open(path, "rb") as handle:  # the header only: it runs before every load, and the images file is 47 MB
        data = handle.read(4 * (dims + 1))
    length = path.stat().st_size
    expected = IDX_UBYTE << 8 | dims
    if length < 4 * (dims + 1):
        return f"{path.name} has {length} bytes, fewer than its {4 * (dims + 1)}-byte header"
    magic = int.from_bytes(data[:4], "big")
    if magic != expected:
        return f"{path.name} starts with magic number {hex(magic)}, expected {hex(expected)}"
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    size = length - 4 * (dims + 1)
    if size != math.prod(shape):
        return f"{path.name} declares shape {shape} but holds {size} bytes of data"
    if dims == 3 and shape[0] == 0:
        return f"{path.name} declares 0 images, expected at least one"
    if dims == 3 and tuple(shape[1:]) != tuple(image_size):
        return f"{path.name} declares images of {shape[1]} x {shape[2]}, expected {image_size[0]} x {image_size[1]}"
    return None


def idx_count(path: Path) -> int:
    """The first dimension in an idx file's header: its number of images or labels."""
    with open(path, "rb") as handle:
        return int.from_bytes(handle.read(8)[4:8], "big")


class UInt8Images(GathersBatches):
    """Images held as uint8 [N, C, H, W] with int64 labels [N], scaled to [-1, 1] a batch at a time. At a data
    set's own resolution and channels its PIL transform changes nothing but the scaling (no resize, crop or mode
    conversion), so these are its images to the bit, without a PIL image and a collate per sample."""

    def __init__(self, images: Tensor, labels: Tensor):
        self.tensors = (images, labels)

    def __len__(self) -> int:
        return len(self.tensors[0])

    def gather(self, tensors, index: Tensor) -> list[Tensor]:
        images, labels = tensors
        return [uint8_to_unit_range(images.index_select(0, index)), labels.index_select(0, index)]

    def labels(self) -> Tensor:
        return self.tensors[1]


class TorchvisionDataModule(ImageDataModule):
    """One torchvision dataset class with a ``train``/``test`` flag; ``split: all`` concatenates both."""

    dataset_class: type[Dataset]
    #: the files, relative to root, that must all exist before torchvision is asked to read them
    files: list[str]
    #: the layout shown when they are missing
    layout: str
    #: (channels, height, width) as stored: at this shape the images are held as uint8 and gathered a batch at a time
    native_shape: tuple[int, int, int]
    #: the classes its labels index (MNIST, Fashion-MNIST, CIFAR-10: 10); data.num_classes must say the same
    label_classes: int = 10

    def __init__(self, root: str, resolution: int, channels: int, split: str = "train", download: bool = True,
                 sample_shape=None, **loader_options):
        if split not in SPLITS:
            raise ConfigError(f"data.split={split!r} is not a {self.dataset_name} split; expected one of {sorted(SPLITS)}")
        loader_options["num_classes"] = self.require_classes(loader_options.get("num_classes"), self.label_classes,
                                                             self.dataset_name)
        super().__init__(root, resolution, channels, sample_shape, **loader_options)
        self.split, self.download = split, bool(download)

    @property
    def folder(self) -> Path:
        return self.root / Path(self.files[0]).parent

    def missing_files(self) -> list[str]:
        return [name for name in self.files if not (self.root / name).is_file()]

    def folders_in_place(self) -> list[str]:
        """The files that are folders instead (``data_batch_5/``): reported as such, and not downloaded over."""
        return [name for name in self.files if (self.root / name).is_dir()]

    def not_found(self, reason: str = "") -> DatasetNotFoundError:
        root_fix = f"set data.root to the folder that holds {self.files[0].split('/')[0]}/ (now {self.root})"
        fix = f"{root_fix}, or data.download=true on a machine with internet"
        folders = self.folders_in_place()
        if not reason:
            missing = [name for name in self.missing_files() if name not in folders]
            reasons = []
            if missing:
                reasons.append(f"missing {Path(missing[0]).name}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
            if folders:
                names = " and ".join(Path(name).name for name in folders)
                reasons.append(names + (" is a folder, not a file" if len(folders) == 1 else " are folders, not files"))
                plural = "s" if len(folders) > 1 else ""
                fix = f"put the file{plural} {names} there in place of the folder{plural}, or {root_fix}"
            reason = "; ".join(reasons)
        packed = self.packed_files()
        if packed:  # the generic line left the files sitting there unmentioned (a data audit)
            reason = f"{reason}; {packed[0]}" if reason else packed[0]
            fix = packed[1]
        return DatasetNotFoundError(self.dataset_name, self.folder, self.layout, fix, reason)

    def packed_files(self) -> tuple[str, str] | None:
        """(what is there, what to do) when the missing files are there compressed (MNIST's ``.gz``) or the archive
        is there unextracted (CIFAR-10's ``.tar.gz``)."""
        gzipped = [self.root / f"{name}.gz" for name in self.missing_files() if (self.root / f"{name}.gz").is_file()]
        if gzipped:
            return (f"{gzipped[0].name}{' and the others' if len(gzipped) > 1 else ''} are there gzipped",
                    f"gunzip them where they are (gunzip {gzipped[0].parent}/*.gz), or data.download=true, which checks "
                    "and extracts them")
        archive = getattr(self.dataset_class, "filename", None)
        if archive and self.missing_files() and (self.root / archive).is_file():
            return (f"the archive {archive} is there, not extracted",
                    f"extract it where it is (tar -xzf {self.root / archive} -C {self.root}), or data.download=true, "
                    "which checks and extracts it")
        return None

    def prepare_data(self) -> None:
        if not self.missing_files():
            return
        if not self.download or self.folders_in_place():  # a download would not replace a folder
            raise self.not_found()
        log.info("Downloading %s to %s", self.dataset_name, self.root)
        try:
            self.dataset_class(str(self.root), train=True, download=True)
        except (URLError, OSError, RuntimeError) as error:
            raise self.not_found(f"download failed: {one_line(error)}") from None

    def load(self) -> Dataset:
        if self.missing_files():
            raise self.not_found()
        # checked before torchvision reads them: it reads some bad content without complaint (CIFAR rows of
        # another width become scrambled images, a short labels file fails with IndexError mid-training)
        problems = (self.readable_problem(self.root / name) for name in self.files)
        problem = next((p for p in problems if p), None)
        if problem:
            raise DatasetFormatError(self.dataset_name, self.folder, problem)
        try:
            parts = [self.dataset_class(str(self.root), train=train, transform=self.transform) for train in SPLITS[self.split]]
        except PARSE_ERRORS as error:
            raise DatasetFormatError(self.dataset_name, self.folder, error) from None
        if self.sample_shape == self.native_shape:
            arrays = [self.uint8_images(part) for part in parts]
            return UInt8Images(torch.cat([images for images, _ in arrays]), torch.cat([labels for _, labels in arrays]))
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)

    @staticmethod
    def uint8_images(part: Dataset) -> tuple[Tensor, Tensor]:
        """A torchvision set's images as uint8 [N, C, H, W] and its labels as int64 [N]."""
        raise NotImplementedError

    def file_problem(self, path: Path) -> str | None:
        """Why one file cannot be read (torchvision's own errors are bare asserts or pickle errors), or None."""
        return None

    def readable_problem(self, path: Path) -> str | None:
        """:meth:`file_problem`, with a file the OS refuses to read (permissions) named instead of its traceback."""
        try:
            return self.file_problem(path)
        except OSError as error:
            return f"{path.name} cannot be read ({error.strerror or one_line(error)}), expected a file this user can read"


class MNISTDataModule(TorchvisionDataModule):
    dataset_name = "mnist"
    dataset_class = datasets.MNIST
    files = mnist_files(datasets.MNIST)
    layout = "MNIST/raw/ with the 4 uncompressed idx files train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"

    native_shape = (1, 28, 28)

    def __init__(self, root: str, resolution: int = 28, channels: int = 1, **options):
        super().__init__(root, resolution, channels, **options)

    @staticmethod
    def uint8_images(part: datasets.MNIST) -> tuple[Tensor, Tensor]:
        return part.data.unsqueeze(1), part.targets.long()

    def file_problem(self, path: Path) -> str | None:
        problem = idx_problem(path)
        if problem or "labels" not in path.name:
            return problem
        # torchvision pairs labels with images by index: a short labels file would fail mid-training
        images = path.with_name(path.name.replace("labels-idx1", "images-idx3"))
        num_images, num_labels = idx_count(images), idx_count(path)
        if num_images != num_labels:
            return f"{images.name} holds {num_images} images but {path.name} {num_labels} labels, expected one label per image"
        # the values too (60 kB): one label out of range stopped a run mid-training when its batch came, naming
        # neither the file nor the index, and never when the index was not drawn (an audit); CIFAR-10's are checked
        labels = np.frombuffer(path.read_bytes()[8:], dtype=np.uint8)
        outside = np.flatnonzero(labels >= 10)
        if len(outside):
            return f"{path.name} holds label {int(labels[outside[0]])} at index {int(outside[0])}, expected labels 0 to 9"
        return None


class FashionMNISTDataModule(MNISTDataModule):
    dataset_name = "fashion_mnist"
    dataset_class = datasets.FashionMNIST
    files = mnist_files(datasets.FashionMNIST)
    layout = MNISTDataModule.layout.replace("MNIST/raw/", "FashionMNIST/raw/")


class CIFAR10DataModule(TorchvisionDataModule):
    dataset_name = "cifar10"
    dataset_class = CIFAR10Files
    files = cifar_files(CIFAR10Files)
    layout = "cifar-10-batches-py/ with the python pickles data_batch_1..data_batch_5, test_batch and batches.meta"

    native_shape = (3, 32, 32)

    def __init__(self, root: str, resolution: int = 32, channels: int = 3, **options):
        super().__init__(root, resolution, channels, **options)

    @staticmethod
    def uint8_images(part: datasets.CIFAR10) -> tuple[Tensor, Tensor]:
        # torchvision keeps CIFAR-10 as [N, 32, 32, 3] (rows of R, G, B planes, reshaped and transposed)
        return torch.from_numpy(part.data).permute(0, 3, 1, 2).contiguous(), torch.as_tensor(part.targets, dtype=torch.int64)

    def file_problem(self, path: Path) -> str | None:
        key = "label_names" if path.name == CIFAR10Files.meta["filename"] else "data"
        try:
            with open(path, "rb") as handle:
                content = pickle.load(handle, encoding="latin1")
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as error:
            return f"{path.name} is not a python pickle ({one_line(error, 100)})"
        if isinstance(content, dict) and key not in content and key.encode() in content:
            # re-pickled after reading with encoding="bytes" (the CIFAR site's snippet): "holds no 'data'" misled
            return (f"{path.name} holds its entries under bytes keys ({key.encode()!r}), as pickle.load(..., "
                    f"encoding='bytes') leaves them; expected the CIFAR site's pickles, or re-pickle with str keys")
        if not isinstance(content, dict) or key not in content:
            return f"{path.name} holds no {key!r} entry"
        if key == "data":
            return cifar_batch_problem(path, content)
        return None
