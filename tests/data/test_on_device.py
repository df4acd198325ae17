"""``data.on_device``: an in-memory training set held on the training device, batches gathered there.

On a GPU the point is what does not happen on the host (no gather, no copy of unpinned samples, which makes the
host wait for the GPU); what can be checked here is that the held path trains on exactly the batches the host
path gives, that it reads nothing back on a non-CPU device, and that it is refused where it cannot apply.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from gan.data import DigitsDataModule, Toy2DDataModule
from gan.data.base import GANDataModule, SampleIndices
from gan.utils.errors import ConfigError, DataError
from tests.conftest import tiny_overrides
from tests.data.fake_datasets import LABELLED_PAST_THEIR_CLASSES
from tests.test_resume import assert_same_state
from train import train


def stand_in_trainer(device: str = "cpu", real_batches: int = 3) -> SimpleNamespace:
    """What the data module reads of a trainer: the device it trains on and the batches one training step takes."""
    return SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(device)),
                           lightning_module=SimpleNamespace(real_batches_per_training_step=real_batches))


def training_loader(data: GANDataModule, device: str = "cpu"):
    data.setup("fit")
    data.trainer = stand_in_trainer(device)
    return data.train_dataloader()


def delivered(data: GANDataModule, batch, device: str = "cpu"):
    """A loader batch as the training step receives it: moved to ``device`` as Lightning moves it, then the
    data module's hook after the transfer."""
    return data.on_after_batch_transfer(batch.to(device) if isinstance(batch, SampleIndices) else batch, 0)


def in_memory_data(name: str, data_dir, **options) -> GANDataModule:
    if name == "digits":
        return DigitsDataModule(root=str(data_dir), limit=300, batch_size=16, **options)
    if name == "cifar10":  # in memory at its own shape: random images in CIFAR-10's on-disk format
        from gan.data import CIFAR10DataModule
        from tests.data.fake_datasets import write_cifar10

        if not (data_dir / "cifar-10-batches-py").is_dir():
            write_cifar10(data_dir, per_batch=40)
        return CIFAR10DataModule(root=str(data_dir), download=False, batch_size=8, num_workers=0, **options)
    return Toy2DDataModule(layout="grid", num_samples=500, batch_size=32, **options)


@pytest.mark.parametrize("name", ["digits", "toy2d_grid", "cifar10"])
def test_held_batches_are_the_host_loaders_batches(name, data_dir, tmp_path):
    data_dir = tmp_path if name == "cifar10" else data_dir
    host, held = in_memory_data(name, data_dir, on_device=False), in_memory_data(name, data_dir, on_device=True)
    host_batches, held_batches = iter(training_loader(host)), iter(training_loader(held))
    assert host._held is None and held._held is not None
    # 12 training batches of 3 real batches each cross several passes over the set
    for _ in range(12):
        host_batch, held_batch = next(host_batches), next(held_batches)
        assert isinstance(held_batch, SampleIndices) and held_batch.index.dtype == torch.int64
        gathered = delivered(held, held_batch)
        assert len(gathered) == len(host_batch) == 2
        for mine, theirs in zip(gathered, host_batch):
            assert torch.equal(mine, theirs)


def test_auto_holds_only_on_an_accelerator_and_only_sets_in_memory(data_dir):
    digits = DigitsDataModule(root=str(data_dir), limit=100)
    training_loader(digits)  # on_device: auto, training on the CPU: the loader gathers on the host as before
    assert digits._held is None
    assert isinstance(next(iter(digits.train_dataloader())), list)
    outside = DigitsDataModule(root=str(data_dir), limit=100, on_device=True)
    outside.setup("fit")  # iterated without a trainer (one pass, e.g. a script): samples, never indices
    assert isinstance(next(iter(outside.train_dataloader())), list) and outside._held is None
    meta = DigitsDataModule(root=str(data_dir), limit=100)
    training_loader(meta, device="meta")  # auto on a device that is not the CPU: held there
    assert [tensor.device.type for tensor in meta._held] == ["meta", "meta"]


def test_the_held_path_reads_nothing_back_from_the_device(data_dir):
    # a meta tensor has no values: any read (.item(), bool, .tolist(), a copy to the host) raises, so gathering
    # the batches on it is the proof that the held path makes the host wait for nothing
    data = DigitsDataModule(root=str(data_dir), limit=100, batch_size=8, on_device=True)
    batches = iter(training_loader(data, device="meta"))
    for _ in range(5):
        samples, labels = delivered(data, next(batches), device="meta")
        assert samples.device.type == labels.device.type == "meta"
        assert samples.shape == (24, 1, 28, 28) and labels.shape == (24,)


def test_a_held_sets_labels_are_checked_once_on_the_host():
    data = GANDataModule(sample_shape=(2,), num_classes=3, batch_size=4, on_device=True)
    data.train_set = torch.utils.data.TensorDataset(torch.zeros(20, 2), torch.tensor([0, 1, 2, 3] * 5))
    data.trainer = stand_in_trainer()
    with pytest.raises(DataError, match=r"^data GANDataModule yields labels in \[0, 3\]; expected class indices in \[0, 3\)"):
        data.train_dataloader()


class FromFiles(torch.utils.data.Dataset):
    """A set that computes each sample in ``__getitem__`` (as images read from files): nothing to hold."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int):
        return torch.zeros(2), torch.tensor(-1)


def test_on_device_is_refused_where_it_cannot_apply():
    with pytest.raises(ConfigError, match=r"^data.on_device must be true, false or auto, got 'yes'$"):
        GANDataModule(sample_shape=(2,), on_device="yes")
    with pytest.raises(ConfigError, match=r"^data.on_device must be true, false or auto, got 1$"):
        GANDataModule(sample_shape=(2,), on_device=1)
    data = GANDataModule(sample_shape=(2,), batch_size=2, on_device=True)
    data.train_set, data.trainer = FromFiles(), stand_in_trainer()
    with pytest.raises(ConfigError, match=r"^data.on_device=true: data GANDataModule reads its samples through FromFiles, "
                                          r"not from tensors in memory; only in-memory sets \(the digits, Stacked MNIST"):
        data.train_dataloader()
    data.on_device = "auto"  # auto: such data stays on the host, without a word
    assert isinstance(next(iter(data.train_dataloader())), list) and data._held is None


@pytest.mark.parametrize("resolution", [28, 32])
def test_stacked_mnist_batches_are_its_images_composed_one_by_one(data_dir, resolution):
    """Stacked MNIST is gathered a batch at a time too (and so can be held): each image of a batch is its three
    digits in [-1, 1], resized as one image, and its label the 3-digit number, as composed sample by sample."""
    from torchvision.transforms import v2

    from gan.data.stacked_mnist import StackedMNISTDataModule
    from gan.data.transforms import uint8_to_unit_range

    data = StackedMNISTDataModule(root=str(data_dir), source="digits", num_samples=500, resolution=resolution)
    data.setup("fit")
    digits, labels, triples = data.train_set.tensors
    index = torch.randperm(500, generator=torch.Generator().manual_seed(0))[:64]
    images, numbers = data.train_set.gather(data.train_set.tensors, index)
    for row, i in enumerate(index.tolist()):
        expected = uint8_to_unit_range(digits[triples[i]])  # [3, 28, 28]: R, G, B
        if resolution != 28:
            expected = v2.Resize(resolution, antialias=True)(expected)
        assert torch.equal(images[row], expected)
        assert numbers[row] == 100 * labels[triples[i, 0]] + 10 * labels[triples[i, 1]] + labels[triples[i, 2]]
        image, number = data.train_set[i]
        assert torch.equal(image, expected) and number == numbers[row]
    assert torch.equal(data.train_set.labels()[index], numbers)


def test_held_data_with_labels_past_its_classes_stops_before_training(make_cfg):
    cfg = make_cfg(tiny_overrides("cgan", "digits", steps=1) + [f"data._target_={LABELLED_PAST_THEIR_CLASSES}",
                                                                "data.on_device=true"])
    with pytest.raises(DataError, match=r"^data digits yields labels in \[10, 19\]; expected class indices in \[0, 10\)"):
        train(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("model, data", [("cgan", "digits"), ("wgan_gp", "toy2d_grid"), ("acgan", "stacked_mnist")])
def test_a_run_on_held_data_trains_the_same_weights(make_cfg, tmp_path, model, data):
    """Held on the CPU (on_device=true): the same batches, so the same updates bit for bit, labels included (cgan,
    acgan on Stacked MNIST's 1,000 classes) and over several real batches per iteration (wgan_gp's five critic
    steps, several iterations per batch)."""
    run = tiny_overrides(model, data, steps=6) + ["metrics=none"] + (["data.num_samples=200"] if data == "stacked_mnist" else [])
    _, host = train(make_cfg(run + ["data.on_device=false"], output_dir=tmp_path / "host"))
    _, held = train(make_cfg(run + ["data.on_device=true"], output_dir=tmp_path / "held"))
    assert host["datamodule"]._held is None and held["datamodule"]._held is not None
    assert held["module"].generator_steps == 6
    assert_same_state(host["module"], held["module"])


def test_the_loader_benchmark_times_both_paths_on_the_same_batches(data_dir):
    from benchmarks import loader

    rows = [*loader.main(["--data", "toy2d_grid", "stacked_mnist", "--resolution", "32", "--batches", "2", "--repeats", "2",
                          "--root", str(data_dir)]),
            *loader.main(["--data", "toy2d_grid", "--batches", "2", "--repeats", "2", "--on-device", "--root", str(data_dir)])]
    assert [(r["data"], r["batch_shape"], r["on_device"]) for r in rows] == [
        ("toy2d_grid", [192, 2], False), ("stacked_mnist", [192, 3, 32, 32], False), ("toy2d_grid", [192, 2], True)]
    for row in rows:
        assert 0 < row["min_ms"] <= row["ms_per_batch"] <= row["max_ms"]


def test_lightning_moves_the_indices_with_a_copy_that_does_not_wait(monkeypatch):
    """Lightning asks a tensor for a non-blocking copy but calls any other object's ``to`` with the device alone: the
    indices must not then take a blocking copy, which on a GPU waits for everything queued."""
    from lightning.fabric.utilities.apply_func import move_data_to_device

    copies = []
    to = torch.Tensor.to

    def recorded(tensor, *args, **kwargs):
        copies.append(kwargs.get("non_blocking", False))
        return to(tensor, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", recorded)
    moved = move_data_to_device(SampleIndices(torch.arange(4)), torch.device("meta"))
    assert isinstance(moved, SampleIndices) and moved.index.device.type == "meta" and copies == [True]
