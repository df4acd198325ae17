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
    return Toy2DDataModule(layout="grid", num_samples=500, batch_size=32, **options)


@pytest.mark.parametrize("name", ["digits", "toy2d_grid"])
def test_held_batches_are_the_host_loaders_batches(name, data_dir):
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


def test_on_device_is_refused_where_it_cannot_apply(make_cfg):
    with pytest.raises(ConfigError, match=r"^data.on_device must be true, false or auto, got 'yes'$"):
        GANDataModule(sample_shape=(2,), on_device="yes")
    with pytest.raises(ConfigError, match=r"^data.on_device must be true, false or auto, got 1$"):
        GANDataModule(sample_shape=(2,), on_device=1)
    cfg = make_cfg(tiny_overrides("dcgan", "stacked_mnist", steps=1) + ["data.num_samples=64", "data.on_device=true"])
    with pytest.raises(ConfigError, match=r"^data.on_device=true: data stacked_mnist reads its samples through "
                                          r"\w+, not from tensors in memory; only in-memory sets"):
        train(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("model, data", [("cgan", "digits"), ("wgan_gp", "toy2d_grid")])
def test_a_run_on_held_data_trains_the_same_weights(make_cfg, tmp_path, model, data):
    """Held on the CPU (on_device=true): the same batches, so the same updates bit for bit, labels included (cgan)
    and over several real batches per iteration (wgan_gp's five critic steps, several iterations per batch)."""
    run = tiny_overrides(model, data, steps=6) + ["metrics=none"]
    _, host = train(make_cfg(run + ["data.on_device=false"], output_dir=tmp_path / "host"))
    _, held = train(make_cfg(run + ["data.on_device=true"], output_dir=tmp_path / "held"))
    assert host["datamodule"]._held is None and held["datamodule"]._held is not None
    assert held["module"].generator_steps == 6
    assert_same_state(host["module"], held["module"])
