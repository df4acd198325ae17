"""Stacked MNIST: three digits as RGB channels, label = the 3-digit number, reproducible from the seed."""
import torch

from gan.data import StackedMNISTDataModule
from gan.data.digits import load_digits_array
from tests.data.fake_datasets import write_mnist


def test_built_from_mnist_when_present(tmp_path):
    arrays = write_mnist(tmp_path, train=30, test=3)
    dm = StackedMNISTDataModule(str(tmp_path), num_samples=64, seed=5)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.source == "mnist" and len(dm.train_set) == 64 and dm.num_classes == 1000
    digits, labels = torch.from_numpy(arrays["train_images"]), torch.from_numpy(arrays["train_labels"]).long()
    for index in range(64):
        image, label = dm.train_set[index]
        red, green, blue = dm.train_set.triples[index].tolist()
        assert image.shape == (3, 28, 28)
        for channel, which in enumerate((red, green, blue)):
            assert torch.allclose(image[channel], digits[which].float() / 127.5 - 1)
        assert int(label) == 100 * labels[red] + 10 * labels[green] + labels[blue]


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
