"""MNIST, Fashion-MNIST and CIFAR-10 read from tiny copies in their exact on-disk formats."""
import urllib.request
from urllib.error import URLError

import numpy as np
import pytest
import torch

from gan.data import CIFAR10DataModule, DatasetFormatError, DatasetNotFoundError, FashionMNISTDataModule, MNISTDataModule
from tests.data.fake_datasets import write_cifar10, write_idx, write_mnist


def unit(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array.astype(np.float32)) / 127.5 - 1


@pytest.mark.parametrize("module,folder", [(MNISTDataModule, "MNIST"), (FashionMNISTDataModule, "FashionMNIST")])
def test_mnist_formats_read_exactly_in_unit_range(tmp_path, module, folder):
    arrays = write_mnist(tmp_path, folder, train=20, test=7)
    dm = module(str(tmp_path), batch_size=8, num_workers=0)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_set) == 20 and dm.num_classes == 10 and dm.sample_shape == (1, 28, 28)
    image, label = dm.train_set[3]
    assert type(image) is torch.Tensor and torch.equal(image, unit(arrays["train_images"][3])[None])
    assert label == arrays["train_labels"][3]
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 1, 28, 28) and images.dtype == torch.float32 and labels.shape == (8,)
    assert images.min() >= -1 and images.max() <= 1
    assert len(list(dm.train_dataloader())) == 20 // 8  # drop_last


@pytest.mark.parametrize("split,size", [("train", 20), ("test", 7), ("all", 27)])
def test_mnist_splits(tmp_path, split, size):
    write_mnist(tmp_path, train=20, test=7)
    dm = MNISTDataModule(str(tmp_path), split=split)
    dm.setup("fit")
    assert len(dm.train_set) == size


def test_mnist_resized_and_as_rgb(tmp_path):
    write_mnist(tmp_path, train=10, test=2)
    dm = MNISTDataModule(str(tmp_path), resolution=32, channels=3, sample_shape=[3, 32, 32])
    dm.setup("fit")
    image, _ = dm.train_set[0]
    assert image.shape == (3, 32, 32)
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])  # gray repeated as RGB
    assert image.min() >= -1 and image.max() <= 1


def test_cifar10_pickles_read_without_official_checksums(tmp_path):
    arrays = write_cifar10(tmp_path, per_batch=6, test=5)
    dm = CIFAR10DataModule(str(tmp_path))
    dm.setup("fit")
    assert len(dm.train_set) == 5 * 6 and dm.sample_shape == (3, 32, 32) and dm.num_classes == 10
    data, labels = arrays["data_batch_2"]
    image, label = dm.train_set[6 + 4]  # the 5th image of the second batch
    assert torch.equal(image, unit(data[4].reshape(3, 32, 32)))  # rows are channel-major R, G, B planes
    assert label == labels[4]
    test = CIFAR10DataModule(str(tmp_path), split="test")
    test.setup("fit")
    assert len(test.train_set) == 5


def offline(monkeypatch):
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return calls


@pytest.mark.parametrize("module,writer", [(MNISTDataModule, write_mnist), (CIFAR10DataModule, write_cifar10)])
def test_download_default_does_not_touch_the_network_when_files_exist(tmp_path, monkeypatch, module, writer):
    writer(tmp_path)
    calls = offline(monkeypatch)
    dm = module(str(tmp_path))
    assert dm.download
    dm.prepare_data()
    dm.setup("fit")
    assert calls == [] and len(dm.train_set) > 0


@pytest.mark.parametrize("module,folder,expected", [
    (MNISTDataModule, "MNIST/raw", "train-images-idx3-ubyte"),
    (FashionMNISTDataModule, "FashionMNIST/raw", "t10k-labels-idx1-ubyte"),
    (CIFAR10DataModule, "cifar-10-batches-py", "data_batch_1"),
])
def test_missing_data_is_one_line_naming_folder_layout_and_fix(tmp_path, module, folder, expected):
    with pytest.raises(DatasetNotFoundError) as error:
        module(str(tmp_path), download=False).prepare_data()
    message = str(error.value)
    assert "\n" not in message
    assert f"{tmp_path}/{folder}" in message and expected in message
    assert "data.root" in message and "data.download=true" in message


def test_failed_download_says_why_in_one_line(tmp_path, monkeypatch):
    offline(monkeypatch)
    with pytest.raises(DatasetNotFoundError, match=r"download failed: RuntimeError: .*network is unreachable") as error:
        MNISTDataModule(str(tmp_path)).prepare_data()
    assert "\n" not in str(error.value) and str(tmp_path / "MNIST" / "raw") in str(error.value)


def test_unparseable_files_name_the_problem(tmp_path):
    write_mnist(tmp_path, train=4, test=2)
    write_idx(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte", np.zeros((4, 28), np.uint8))  # 2 dims, not 3
    with pytest.raises(DatasetFormatError, match=r"train-images-idx3-ubyte starts with magic number 0x802, expected 0x803"):
        MNISTDataModule(str(tmp_path)).setup("fit")
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x04 truncated")
    with pytest.raises(DatasetFormatError, match=r"data_batch_3 is not a python pickle") as error:
        CIFAR10DataModule(str(tmp_path)).setup("fit")
    assert "\n" not in str(error.value)


def test_bad_options_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match=r"data.split='validation'.*\['all', 'test', 'train'\]"):
        MNISTDataModule(str(tmp_path), split="validation")
    with pytest.raises(ValueError, match=r"data.channels must be 1 \(grayscale\) or 3 \(RGB\), got 2"):
        CIFAR10DataModule(str(tmp_path), channels=2)
    with pytest.raises(ValueError, match=r"\[3, 32, 32\].*\[1, 28, 28\]"):
        CIFAR10DataModule(str(tmp_path), sample_shape=[1, 28, 28])


@pytest.mark.parametrize("module, writer", [(MNISTDataModule, write_mnist), (FashionMNISTDataModule, write_mnist),
                                            (CIFAR10DataModule, write_cifar10)])
@pytest.mark.parametrize("split", ["train", "all"])
def test_at_their_own_shape_the_images_are_gathered_from_uint8_as_pil_reads_them(tmp_path, module, writer, split):
    """At the data's own resolution and channels the set is held as uint8 and gathered a batch at a time: the same
    images and labels to the bit as torchvision's per-image PIL path with the data's transform."""
    from gan.data.base import GathersBatches
    from gan.data.torchvision_sets import SPLITS

    if module is FashionMNISTDataModule:
        writer(tmp_path, "FashionMNIST", train=20, test=7)
    else:
        writer(tmp_path)
    dm = module(str(tmp_path), split=split)
    dm.setup("fit")
    assert isinstance(dm.train_set, GathersBatches)
    one_by_one = torch.utils.data.ConcatDataset(
        [dm.dataset_class(str(tmp_path), train=train, transform=dm.transform) for train in SPLITS[split]])
    assert len(dm.train_set) == len(one_by_one)
    index = torch.randperm(len(one_by_one), generator=torch.Generator().manual_seed(0))
    images, labels = dm.train_set.gather(dm.train_set.tensors, index)
    for row, i in enumerate(index.tolist()):
        image, label = one_by_one[i]
        assert torch.equal(images[row], image) and labels[row] == label and labels.dtype == torch.int64
    assert torch.equal(dm.train_set[int(index[0])][0], images[0])
    resized = module(str(tmp_path), split=split, resolution=20, sample_shape=[dm.sample_shape[0], 20, 20])
    resized.setup("fit")  # another shape: PIL resizes each image, as before
    assert not isinstance(resized.train_set, GathersBatches) and resized.train_set[0][0].shape[-1] == 20


def raises_one_line(pattern, call):
    with pytest.raises(DatasetFormatError, match=pattern) as error:
        call()
    assert type(error.value) is DatasetFormatError and "\n" not in str(error.value)


def test_an_mnist_label_of_ten_is_refused_naming_it_and_its_index(tmp_path):
    """10 is one past the last class (0-9): only labels above 10 were refused (a mutation audit)."""
    write_mnist(tmp_path, train=20, test=7)
    labels = (np.arange(20) % 10).astype(np.uint8)
    labels[13] = 10
    write_idx(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", labels)
    raises_one_line(r"mnist files in .*MNIST/raw cannot be parsed \(train-labels-idx1-ubyte holds label 10 at index 13, "
                    r"expected labels 0 to 9\)", lambda: MNISTDataModule(str(tmp_path)).setup("fit"))


def test_an_idx_file_with_bytes_after_its_data_is_refused(tmp_path):
    """More bytes than the header's shape declares is a file of another layout, as fewer is (only fewer was refused;
    a mutation audit)."""
    write_mnist(tmp_path, train=20, test=7)
    labels = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes() + bytes(3))
    raises_one_line(r"mnist files in .*MNIST/raw cannot be parsed \(train-labels-idx1-ubyte declares shape \[20\] but "
                    r"holds 23 bytes of data\)", lambda: MNISTDataModule(str(tmp_path)).setup("fit"))


def test_an_mnist_labels_file_longer_than_its_images_file_is_refused(tmp_path):
    """One label per image: more labels than images is refused as fewer is (only fewer was; a mutation audit)."""
    write_mnist(tmp_path, train=20, test=7)
    write_idx(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", (np.arange(25) % 10).astype(np.uint8))
    raises_one_line(r"mnist files in .*MNIST/raw cannot be parsed \(train-images-idx3-ubyte holds 20 images but "
                    r"train-labels-idx1-ubyte 25 labels, expected one label per image\)",
                    lambda: MNISTDataModule(str(tmp_path)).setup("fit"))
