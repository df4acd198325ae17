"""Stacked MNIST (Metz et al. 2017, Srivastava et al. 2017): three digits drawn independently and
stacked as the R, G, B channels, so there are 10^3 = 1,000 modes. The label is the 3-digit number
``100 * red + 10 * green + blue``, the class a conditional model is given; the ``stacked_modes`` metric counts
the 3-digit numbers the digit classifier reads in generated images.

The digits come from MNIST's 60,000 training images when they are under ``root`` (torchvision's layout,
``MNIST/raw/``), else from the 5,000 embedded ones. The ``num_samples`` triples are drawn once from a
generator seeded with ``seed``, so the data set is the same on every run and every rank; images are
composed on the fly from the uint8 digits (100,000 stored float images would take 940 MB), a batch at a time,
on the host or, with ``data.on_device``, on the training device (the digits and triples held there).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from gan.data.base import GathersBatches
from gan.data.digits import load_digits_array
from gan.data.errors import DatasetFormatError, DatasetNotFoundError
from gan.data.image_data import ImageDataModule
from gan.data.torchvision_sets import MNISTDataModule
from gan.data.transforms import uint8_to_unit_range
from gan.utils.errors import ConfigError

log = logging.getLogger("gan")

SOURCES = ("auto", "mnist", "digits")


class StackedDigits(GathersBatches):
    def __init__(self, digits: Tensor, labels: Tensor, triples: Tensor, resize: v2.Transform | None = None):
        """``digits`` uint8 [N, H, W], ``labels`` [N], ``triples`` [M, 3] indices into them."""
        self.tensors = (digits, labels, triples)
        self.resize = resize

    @property
    def triples(self) -> Tensor:
        """[M, 3]: the digits of each image's R, G, B channels."""
        return self.tensors[2]

    def __len__(self) -> int:
        return len(self.triples)

    def gather(self, tensors, index: Tensor) -> list[Tensor]:
        """The images of ``index`` composed from their three digits (a batch [B, 3, H, W]) and their labels."""
        digits, labels, triples = tensors
        which = triples.index_select(0, index)  # [B, 3]: the digits of each image's R, G, B channels
        images = uint8_to_unit_range(digits[which])
        if self.resize is not None:
            images = self.resize(images)
        return [images, self.number(labels[which])]

    def labels(self) -> Tensor:
        return self.number(self.tensors[1][self.triples])

    @staticmethod
    def number(digit_labels: Tensor) -> Tensor:
        """[B, 3] digit labels -> the 3-digit numbers ``100 * red + 10 * green + blue`` (no constant tensor, so
        nothing is copied from the host when it runs on a GPU)."""
        return digit_labels[:, 0] * 100 + digit_labels[:, 1] * 10 + digit_labels[:, 2]


class StackedMNISTDataModule(ImageDataModule):
    dataset_name = "stacked_mnist"

    def __init__(self, root: str, num_samples: int = 100_000, seed: int = 0, source: str = "auto",
                 resolution: int = 28, channels: int = 3, sample_shape=None, **loader_options):
        if source not in SOURCES:
            raise ConfigError(f"data.source={source!r} is not a stacked_mnist source; expected one of {list(SOURCES)}")
        if int(channels) != 3:
            raise ConfigError(f"stacked_mnist stacks 3 digits as RGB, so data.channels must be 3, got {channels}")
        if int(num_samples) < 1:
            raise ConfigError(f"data.num_samples must be positive, got {num_samples}")
        # the labels are the 3-digit numbers: a smaller count stopped at the first batch, a larger one built
        # conditional networks with classes no sample has, without a word
        loader_options["num_classes"] = self.require_classes(loader_options.get("num_classes"), 1000, "stacked_mnist")
        super().__init__(root, resolution, channels, sample_shape, **loader_options)
        self.num_samples, self.seed, self.requested_source = int(num_samples), int(seed), source
        #: "mnist" or "digits", known after setup
        self.source: str | None = None

    def mnist(self) -> MNISTDataModule:
        return MNISTDataModule(str(self.root), download=False)

    def mnist_error(self, error: DatasetNotFoundError | DatasetFormatError) -> DatasetNotFoundError | DatasetFormatError:
        """MNIST's own error with a fix that applies here: stacked_mnist has no ``data.download`` (Hydra refuses
        it), so the fix names ``data=mnist``, which downloads MNIST, and the embedded digits."""
        digits = "data.source=digits for the 5,000 embedded digits"
        if isinstance(error, DatasetNotFoundError):
            return error.with_fix(f"run data=mnist once to download it (or put MNIST/raw/ under data.root, now "
                                  f"{self.root}), or {digits}")
        return error.with_fix(f"replace them (delete them and run data=mnist once to download them again), or {digits}")

    def prepare_data(self) -> None:
        if self.requested_source == "mnist":
            try:
                self.mnist().prepare_data()  # raises the MNIST layout error when it is missing
            except (DatasetNotFoundError, DatasetFormatError) as error:
                raise self.mnist_error(error) from None
        elif self.requested_source == "digits" or self.mnist().missing_files():
            load_digits_array(self.root)

    def load(self) -> Dataset:
        missing = self.mnist().missing_files()
        use_mnist = self.requested_source == "mnist" or (self.requested_source == "auto" and not missing)
        if self.requested_source == "auto" and 0 < len(missing) < len(self.mnist().files):
            # some of MNIST's files but not all: an interrupted download or copy, not a choice of the digits
            log.warning("stacked_mnist: %s holds %d of MNIST's %d files (missing %s), so the 5,000 embedded digits are "
                        "used instead of MNIST's 60,000; complete it (run data=mnist once) or set data.source=digits",
                        self.mnist().folder, len(self.mnist().files) - len(missing), len(self.mnist().files),
                        ", ".join(Path(name).name for name in missing))
        if use_mnist:
            mnist = self.mnist()
            try:
                mnist.setup("fit")
            except (DatasetNotFoundError, DatasetFormatError) as error:
                raise self.mnist_error(error) from None
            images, labels = mnist.train_set.tensors  # [N, 1, 28, 28] uint8: MNIST at its own shape
            digits = images[:, 0]
        else:
            images, numbers = load_digits_array(self.root)
            digits, labels = torch.from_numpy(images), torch.from_numpy(numbers)
        self.source = "mnist" if use_mnist else "digits"
        triples = torch.randint(len(digits), (self.num_samples, 3), generator=torch.Generator().manual_seed(self.seed))
        resize = v2.Resize(self.resolution, antialias=True) if self.resolution != digits.shape[-1] else None
        log.info("stacked_mnist: %d images stacked from the %d %s (seed %d)", self.num_samples, len(digits),
                 "MNIST training digits" if use_mnist else "embedded digits", self.seed)
        return StackedDigits(digits, labels.long(), triples, resize)
