"""Stacked MNIST: three digits as RGB channels, label = the 3-digit number, reproducible from the seed."""
import re

import numpy as np
import pytest
import torch

from gan.data import StackedMNISTDataModule
from gan.data.digits import load_digits_array
from tests.data.fake_datasets import write_idx, write_mnist


def test_built_from_mnist_when_present(tmp_path, caplog):
    arrays = write_mnist(tmp_path, train=30, test=3)
    dm = StackedMNISTDataModule(str(tmp_path), num_samples=64, seed=5)
    dm.prepare_data()
    with caplog.at_level("INFO", logger="gan"):
        dm.setup("fit")
    # the log said "from the 5000 digits digits" for the embedded ones (a README walk-through)
    assert "stacked_mnist: 64 images stacked from the 30 MNIST training digits (seed 5)" in caplog.messages
    assert dm.source == "mnist" and len(dm.train_set) == 64 and dm.num_classes == 1000
    digits, labels = torch.from_numpy(arrays["train_images"]), torch.from_numpy(arrays["train_labels"]).long()
    for index in range(64):
        image, label = dm.train_set[index]
        red, green, blue = dm.train_set.triples[index].tolist()
        assert image.shape == (3, 28, 28)
        for channel, which in enumerate((red, green, blue)):
            assert torch.allclose(image[channel], digits[which].float() / 127.5 - 1)
        assert int(label) == 100 * labels[red] + 10 * labels[green] + labels[blue]


@pytest.mark.parametrize("resolution", [16, 32])
def test_every_digit_can_be_drawn_and_the_images_have_the_resolution_asked(tmp_path, resolution):
    """Smaller resolutions are resized too (only a larger one was tested), and the triples draw from all 12 digits,
    the last included (mutations of either survived)."""
    write_mnist(tmp_path, train=12, test=3)
    dm = StackedMNISTDataModule(str(tmp_path), num_samples=500, seed=1, resolution=resolution)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.train_set[0][0].shape == (3, resolution, resolution)
    assert sorted(dm.train_set.triples.unique().tolist()) == list(range(12))


def test_falls_back_to_the_embedded_digits_and_is_reproducible(data_dir):
    first = StackedMNISTDataModule(str(data_dir), num_samples=2000, seed=0, batch_size=50)
    first.prepare_data()
    first.setup("fit")
    assert first.source == "digits"
    again = StackedMNISTDataModule(str(data_dir), num_samples=2000, seed=0)
    again.setup("fit")
    other = StackedMNISTDataModule(str(data_dir), num_samples=2000, seed=1)
    other.setup("fit")
    assert torch.equal(first.train_set.triples, again.train_set.triples)
    assert not torch.equal(first.train_set.triples, other.train_set.triples)
    _, digit_labels = load_digits_array(data_dir)
    expected = (torch.from_numpy(digit_labels)[first.train_set.triples] * torch.tensor([100, 10, 1])).sum(1)
    labels = torch.stack([first.train_set[i][1] for i in range(2000)])
    assert torch.equal(labels, expected)
    assert len(labels.unique()) > 800  # 2,000 uniform draws over 1,000 modes cover ~86% of them
    images, batch_labels = next(iter(first.train_dataloader()))
    assert images.shape == (50, 3, 28, 28) and images.min() >= -1 and images.max() <= 1
    assert batch_labels.dtype == torch.int64


def test_forced_mnist_source_without_mnist_is_the_mnist_error(tmp_path):
    import pytest

    from gan.data import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match=r"mnist not found in .*MNIST/raw"):
        StackedMNISTDataModule(str(tmp_path), source="mnist").prepare_data()
    with pytest.raises(ValueError, match=r"data.channels must be 3, got 1"):
        StackedMNISTDataModule(str(tmp_path), channels=1)


STACKED_FIX_FOR_MISSING = (r"fix: run data=mnist once to download it \(or put MNIST/raw/ under data\.root, now {root}\), or "
                           r"data\.source=digits for the 5,000 embedded digits$")
STACKED_FIX_FOR_FORMAT = (r"; replace them \(delete them and run data=mnist once to download them again\), or "
                          r"data\.source=digits for the 5,000 embedded digits$")


def raises_exactly(error_type, pattern, call):
    import pytest

    with pytest.raises(error_type, match=pattern) as error:
        call()
    assert type(error.value) is error_type and "\n" not in str(error.value)
    assert "data.download" not in str(error.value)  # stacked_mnist has no such option: Hydra refuses it
    return error.value


def test_missing_mnist_names_a_fix_that_applies_to_stacked_mnist(tmp_path):
    from gan.data import DatasetNotFoundError

    message = (rf"mnist not found in {re.escape(str(tmp_path / 'MNIST' / 'raw'))} \(missing train-images-idx3-ubyte and 3 "
               r"more\); expected MNIST/raw/ with the 4 uncompressed idx files .*; "
               + STACKED_FIX_FOR_MISSING.format(root=re.escape(str(tmp_path))))
    raises_exactly(DatasetNotFoundError, message, StackedMNISTDataModule(str(tmp_path), source="mnist").prepare_data)
    raises_exactly(DatasetNotFoundError, message, lambda: StackedMNISTDataModule(str(tmp_path), source="mnist").setup("fit"))


@pytest.mark.parametrize("source", ["auto", "mnist"])
def test_unreadable_mnist_names_a_fix_that_applies_to_stacked_mnist(tmp_path, source):
    from gan.data import DatasetFormatError

    write_mnist(tmp_path, train=40, test=3)
    images = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])
    dm = StackedMNISTDataModule(str(tmp_path), source=source)
    dm.prepare_data()
    raises_exactly(DatasetFormatError, rf"mnist files in {re.escape(str(images.parent))} cannot be parsed \("
                   r"train-images-idx3-ubyte declares shape \[40, 28, 28\] but holds 984 bytes of data\)"
                   + STACKED_FIX_FOR_FORMAT, lambda: dm.setup("fit"))


def test_mnist_digits_of_another_size_are_refused(tmp_path):
    # 32 x 32 digits were resized to 28 silently
    from gan.data import DatasetFormatError

    write_mnist(tmp_path, train=40, test=3)
    write_idx(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte", np.zeros((40, 32, 32), dtype=np.uint8))
    raises_exactly(DatasetFormatError, r"mnist files in .*MNIST/raw cannot be parsed \(train-images-idx3-ubyte declares "
                   r"images of 32 x 32, expected 28 x 28\)" + STACKED_FIX_FOR_FORMAT,
                   lambda: StackedMNISTDataModule(str(tmp_path)).setup("fit"))


def test_a_partial_mnist_is_said_when_auto_falls_back_to_the_embedded_digits(tmp_path, data_dir, caplog):
    """All of MNIST's files or none is a choice; some of them is an interrupted download, which `auto` used to
    pass over with an info line."""
    import shutil

    shutil.copytree(data_dir / "digits", tmp_path / "digits")
    write_mnist(tmp_path, train=30, test=3)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with caplog.at_level("WARNING", logger="gan"):
        data = StackedMNISTDataModule(str(tmp_path), num_samples=20)
        data.setup("fit")
    assert data.source == "digits"
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said == [f"stacked_mnist: {tmp_path / 'MNIST' / 'raw'} holds 3 of MNIST's 4 files (missing t10k-labels-idx1-ubyte), "
                    "so the 5,000 embedded digits are used instead of MNIST's 60,000; complete it (run data=mnist once) "
                    "or set data.source=digits"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="gan"):  # no MNIST at all: the documented fallback, no warning
        StackedMNISTDataModule(str(data_dir), num_samples=20).setup("fit")
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
