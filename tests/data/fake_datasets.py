"""Tiny data sets written in the exact on-disk formats the real ones use, so tests go through the real readers."""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import TensorDataset

from gan.data.digits import DigitsDataModule

#: an idx file's magic number: two zero bytes, the element type (0x08 = unsigned byte), the number of dims
IDX_UBYTE = 0x08


def write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's idx format: big-endian magic, then each dimension as a big-endian uint32, then the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", IDX_UBYTE << 8 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def random_images(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random uint8 images that contain both 0 and 255, so the [-1, 1] range is reached exactly."""
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    images.reshape(len(images), -1)[:, :2] = [0, 255]
    return images


def write_mnist(root: Path, folder: str = "MNIST", train: int = 40, test: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    """``root/<folder>/raw/`` with the 4 uncompressed idx files torchvision's MNIST/FashionMNIST read."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, n in (("train", train), ("t10k", test)):
        arrays[f"{prefix}_images"] = random_images(rng, (n, 28, 28))
        arrays[f"{prefix}_labels"] = (np.arange(n) % 10).astype(np.uint8)
        write_idx(root / folder / "raw" / f"{prefix}-images-idx3-ubyte", arrays[f"{prefix}_images"])
        write_idx(root / folder / "raw" / f"{prefix}-labels-idx1-ubyte", arrays[f"{prefix}_labels"])
    return arrays


def write_cifar10(root: Path, per_batch: int = 6, test: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """``root/cifar-10-batches-py/`` with 5 training pickles, test_batch and batches.meta, as in the archive:
    each batch a dict with ``data`` (uint8 [n, 3072], channel-major rows) and ``labels``."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    batches = {f"data_batch_{i}": per_batch for i in range(1, 6)} | {"test_batch": test}
    arrays = {}
    for index, (name, n) in enumerate(batches.items()):
        data = random_images(rng, (n, 3072))
        labels = [int(v) for v in (np.arange(n) + index) % 10]
        with open(folder / name, "wb") as handle:
            pickle.dump({"batch_label": name, "data": data, "labels": labels, "filenames": [f"{name}_{i}.png" for i in range(n)]}, handle)
        arrays[name] = (data, np.array(labels))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": names, "num_cases_per_batch": per_batch, "num_vis": 3072}, handle)
    return arrays


def write_celeba(root: Path, partitions: tuple[int, ...] = (0, 0, 0, 0, 0, 0, 1, 1, 2, 2),
                 size: tuple[int, int] | None = None) -> list[str]:
    """``root/celeba/img_align_celeba/*.jpg`` (178 x 218 like the aligned faces) + list_eval_partition.txt.

    The central 178 x 178 square is white and the 20-pixel bands above and below it are black, so a
    correct center crop leaves a white image. ``size`` (width, height): all-white images of that size instead,
    like the pre-cropped, pre-resized copies of CelebA (64 x 64)."""
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    names = [f"{i:06d}.jpg" for i in range(1, len(partitions) + 1)]
    if size is None:
        face = np.zeros((218, 178, 3), dtype=np.uint8)
        face[20:198] = 255
    else:
        face = np.full((size[1], size[0], 3), 255, dtype=np.uint8)
    for name in names:
        Image.fromarray(face).save(folder / "img_align_celeba" / name, quality=95)
    (folder / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(names, partitions)))
    return names


def write_image_tree(root: Path) -> dict[str, Path]:
    """A nested folder of readable images in several formats and modes, plus files that must be skipped."""
    files = {
        "rgb_png": root / "a" / "rgb.png",
        "jpg": root / "a" / "b" / "photo.JPG",
        "gray_png": root / "gray.png",
        "webp": root / "c" / "pic.webp",
        "corrupt_png": root / "a" / "corrupt.png",
        "truncated_jpg": root / "c" / "truncated.jpg",
    }
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (50, 80, 3), dtype=np.uint8)).save(files["rgb_png"])
    Image.fromarray(rng.integers(0, 256, (90, 60, 3), dtype=np.uint8)).save(files["jpg"], format="JPEG")
    Image.fromarray(np.full((40, 40), 200, dtype=np.uint8), mode="L").save(files["gray_png"])
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(files["webp"], format="WEBP")
    files["corrupt_png"].write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
    Image.fromarray(rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)).save(files["truncated_jpg"], format="JPEG")
    data = files["truncated_jpg"].read_bytes()
    files["truncated_jpg"].write_bytes(data[: len(data) // 2])
    (root / "notes.txt").write_text("not an image")
    return files


class DigitsLabelledPastTheirClasses(DigitsDataModule):
    """The embedded digits with their labels 0-9 read as 10-19 while it declares 10 classes: a user's data module
    whose labels outgrow its ``num_classes``, which no shipped data can be (each checks its labels when read)."""

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        super().setup(stage)
        images, labels = self.train_set.tensors
        self.train_set = TensorDataset(images, labels + 10)


#: its ``data._target_``
LABELLED_PAST_THEIR_CLASSES = f"{DigitsLabelledPastTheirClasses.__module__}.{DigitsLabelledPastTheirClasses.__name__}"
