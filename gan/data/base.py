"""The interface every data module offers the rest of the framework.

Batches are ``(samples, labels)``; unlabelled images yield labels of -1, the 2D toys the index of the mixture
component each point was drawn from. ``sample_shape`` is what the
networks are built for (configs interpolate ``${data.sample_shape}``), ``num_classes`` is None for
unlabelled data, and ``real_samples(n)`` gives real data for plots and metrics.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
from typing import Sequence

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset, default_collate

from gan.data.sampler import ResumableSampler
from gan.utils.device import human_size, physical_memory_bytes
from gan.utils.errors import ConfigError, DataError
from gan.utils.targets import class_path

log = logging.getLogger("gan")


#: data.num_workers above this many per core is refused: more processes than that only compete for the cores
MAX_WORKERS_PER_CORE = 8

def start_worker(worker_id: int, rank: int) -> None:
    """A DataLoader worker leaves the run's process group: a SIGTERM or SIGINT sent to the whole group (``timeout``,
    ``kill -- -<pgid>``, Ctrl+C in a shell) killed the workers before the main process could save ``last.ckpt`` at
    the end of its iteration, and Lightning raised "DataLoader worker ... is killed by signal: Terminated" with
    status 1 and no checkpoint (an audit). In a group of its own the worker gets neither, and the main process still
    ends it as torch does (its queue, then ``terminate()`` if it is stuck: ignoring SIGTERM instead left a stuck
    worker alive and the process hanging at exit, a review); a worker whose main process died exits by torch's own
    watchdog. Signals sent to every process of a job one by one (SLURM's to a job step) still reach it. Then
    Lightning's per-worker seeding, which it adds only to loaders without an init function of their own
    (``seed_everything(workers=True)``)."""
    if hasattr(os, "setpgid"):  # POSIX; Windows has no process groups of this kind
        os.setpgid(0, 0)
    if int(os.environ.get("PL_SEED_WORKERS", 0)):
        from lightning.fabric.utilities.seed import pl_worker_init_function

        pl_worker_init_function(worker_id, rank=rank)


def sample_indices(size: int, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` indices into a set of ``size`` drawn without replacement (with replacement if the set is smaller): the
    draw of :meth:`GANDataModule.real_samples` and of the metrics' reference samples."""
    return torch.randperm(size, generator=generator)[:n] if n <= size else torch.randint(size, (n,), generator=generator)


class Columns(list):
    """A batch already gathered column by column (samples, labels): nothing left to collate."""


class GathersBatches(Dataset):
    """In-memory data whose batch is computed from a few tensors by indexing them: ``gather(tensors, index)`` ->
    ``[samples, labels]`` for a 1-D index of int64. The loader gathers a batch at a time on the host
    (``__getitems__``: one indexing per tensor instead of one ``__getitem__`` per sample and a ``torch.stack``); with
    ``data.on_device`` the same ``gather`` runs on the training device, on ``tensors`` moved there once. The
    sampler still picks every index, so the order, an exact resume and the DDP shards do not depend on the path,
    and the batch equals the collated one. ``gather`` must make no tensor from host values (on a GPU such a copy
    makes the host wait)."""

    tensors: tuple[Tensor, ...]

    def gather(self, tensors: Sequence[Tensor], index: Tensor) -> list[Tensor]:
        raise NotImplementedError

    def labels(self) -> Tensor:
        """Every sample's label, in order (on the host): what a held set's batches can hold, checked once."""
        return self.gather(self.tensors, torch.arange(len(self)))[1]

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        """One sample, as the batch gather makes it (plots and metrics read samples one by one)."""
        return tuple(column[0] for column in self.gather(self.tensors, torch.tensor([int(index)])))

    def __getitems__(self, indices: list[int]) -> Columns:
        # through numpy: torch.as_tensor reads a list of Python ints ~8x slower (0.29 against 0.03 ms for the
        # 2,048 indices of an r3gan grid batch)
        index = torch.from_numpy(np.fromiter(indices, dtype=np.int64, count=len(indices)))
        return Columns(self.gather(self.tensors, index))


class BatchedTensorDataset(TensorDataset, GathersBatches):
    """A TensorDataset's tensors, gathered a batch at a time (2.7 ms of a WGAN-GP iteration's 320 samples on a
    CPU sample by sample, 0.24 ms this way)."""

    def gather(self, tensors: Sequence[Tensor], index: Tensor) -> list[Tensor]:
        return [tensor.index_select(0, index) for tensor in tensors]

    def labels(self) -> Tensor:
        return self.tensors[1]


class SampleIndices:
    """A training batch of an in-memory set held on the training device: only the sampler's indices travel
    (pinned, so the copy does not make the host wait for the GPU), and
    :meth:`GANDataModule.on_after_batch_transfer` gathers the samples on the device. Lightning moves any object
    with a ``to`` method, and the loader pins any with a ``pin_memory`` method."""

    __slots__ = ("index",)

    def __init__(self, index: Tensor):
        self.index = index

    def pin_memory(self) -> "SampleIndices":
        return SampleIndices(self.index.pin_memory())

    def to(self, device, non_blocking: bool = True) -> "SampleIndices":
        # non-blocking by default: Lightning asks tensors for a non-blocking copy but calls other objects' ``to``
        # with the device alone, and a blocking copy, pinned or not, makes the host wait for the GPU's queue. The
        # index is fresh for every batch and never written, so nothing can change it before the copy is done.
        return SampleIndices(self.index.to(device, non_blocking=non_blocking))


class IndexDataset(Dataset):
    """The sampler's indices of a set of ``size`` samples, a batch at a time, as :class:`SampleIndices`."""

    def __init__(self, size: int):
        self.size = int(size)

    def __len__(self) -> int:
        return self.size

    def __getitems__(self, indices: list[int]) -> SampleIndices:
        return SampleIndices(torch.from_numpy(np.fromiter(indices, dtype=np.int64, count=len(indices))))


def collate(batch):
    if isinstance(batch, SampleIndices):
        return batch
    return list(batch) if isinstance(batch, Columns) else default_collate(batch)


#: ``data.on_device: auto`` holds an in-memory set on an accelerator up to this size (all its tensors together):
#: the digits take 16 MB, the 2D toys 2 MB; a user's larger set stays on the host unless set to true
AUTO_ON_DEVICE_MAX_BYTES = 1 << 30


#: host memory per sample of a batch's indices: the sampler's Python int and its slot in the batch's list
INDEX_BYTES = 36


#: the values each ``generator_output`` (the generator's output activation) can reach; None: any value
OUTPUT_RANGES: dict[str, tuple[float, float] | None] = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "identity": None}

#: training samples of a set in memory read once after setup to check their kind, shape and values (spread over the
#: set: the digits are stored class by class); a set read from files has its first sample read
SAMPLES_CHECKED = 8

#: how far beyond the output's range a value may lie, as a fraction of the range, before it is out of reach: rounding
#: of a scaling, or a ring of radius 1 with std 0.01 beside tanh (nearly reached: tanh saturates there anyway); the
#: audit's [0, 255] beside tanh, a set normalized with ImageNet's mean and std ([-2.1, 2.6]) or [-1, 1] beside sigmoid
#: lie far beyond
RANGE_TOLERANCE = 0.05


def reaches(bounds: tuple[float, float], low: float, high: float) -> bool:
    """Whether an output bounded to ``bounds`` reaches every value in [low, high], within :data:`RANGE_TOLERANCE`."""
    slack = RANGE_TOLERANCE * (bounds[1] - bounds[0])
    return bounds[0] - slack <= low and high <= bounds[1] + slack


def spread_indices(size: int, count: int) -> list[int]:
    """``count`` indices (at most ``size``) spread evenly from the first to the last of a set of ``size``."""
    count = min(size, count)
    return sorted({round(i * (size - 1) / max(count - 1, 1)) for i in range(count)})


@contextlib.contextmanager
def random_states_kept():
    """torch's (CPU and every CUDA device's), NumPy's and Python's random states as they were, whatever the block
    draws: a check that reads samples must not change the numbers a run draws after it (a review: a data set whose
    __getitem__ adds noise shifted the networks' initial weights)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def checks_the_training_set(setup):
    """``setup`` followed, once it has returned for stage "fit" (or None), by :meth:`GANDataModule.check_training_set`:
    every data module's ``train_set`` is checked where it is made, whoever wrote the module (an audit's module of its
    own failed mid-training with a ZeroDivisionError for an empty set, a TypeError for a ``setup`` that set none, and
    a tensor-size RuntimeError for samples of another shape than declared). A ``setup`` that calls ``super().setup``
    is checked once, when the outermost returns."""
    if getattr(setup, "checks_the_training_set", False):
        return setup

    @functools.wraps(setup)
    def setup_then_check(self, *args, **kwargs):
        depth = self.__dict__.get("_setup_depth", 0)
        self.__dict__["_setup_depth"] = depth + 1
        try:
            result = setup(self, *args, **kwargs)
        finally:
            self.__dict__["_setup_depth"] = depth
        stage = args[0] if args else kwargs.get("stage")
        if depth == 0 and stage in (None, "fit"):
            self.check_training_set()
        return result

    setup_then_check.checks_the_training_set = True
    return setup_then_check


def check_data_module_class(target: object, key: str = "data._target_") -> None:
    """A ConfigError unless ``target`` (a class, a dotted path to one, or a built object) is a :class:`GANDataModule`.
    A plain ``LightningDataModule`` was refused for the options every data config carries (``PlainSpiral takes no
    option generator_output, sample_shape``) and, given them, failed in train.py with an AttributeError traceback
    (no ``check_sample_shape``): neither said why (an audit). A path that cannot be imported is left to Hydra, which
    names it."""
    if target is None:  # no _target_: Hydra builds no data module, and says so where it is used
        return
    klass = target
    if isinstance(target, str):
        from hydra._internal.utils import _locate

        try:
            klass = _locate(target)
        except Exception:
            return
    if not isinstance(klass, type):
        if callable(klass) and not isinstance(klass, pl.LightningDataModule):
            return  # a function that builds the data module: what it returns is checked once built
        klass = type(klass)
    if issubclass(klass, GANDataModule):
        return
    what = "a LightningDataModule but not" if issubclass(klass, pl.LightningDataModule) else "not"
    raise ConfigError(f"{key}={class_path(klass)}: {klass.__name__} is {what} a gan.data.GANDataModule; expected a data module of "
                      "one's own to subclass gan.data.GANDataModule (it takes sample_shape and generator_output, which "
                      "the model configs read, sets self.train_set in setup, and has the checks training runs)")


class GANDataModule(pl.LightningDataModule):
    #: "image" (C, H, W in [-1, 1]) or "points" (unbounded vectors)
    kind = "image"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # a module's own setup, or one a mixin before this class brings (a review): its training set is checked once
        # it returns (a setup already wrapped, inherited, is left as it is)
        cls.setup = checks_the_training_set(cls.setup)

    def setup(self, stage: str | None = None) -> None:
        """Nothing to read: a module of one's own sets ``self.train_set`` here (or in ``__init__``), a Dataset of
        ``(sample, label)`` pairs (label -1 for unlabelled data), every sample a float tensor of ``sample_shape``."""

    def __init__(
        self,
        sample_shape: Sequence[int],
        generator_output: str = "tanh",
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        num_classes: int | None = None,
        on_device: bool | str = "auto",
    ):
        super().__init__()
        if not (on_device is True or on_device is False or on_device == "auto"):
            raise ConfigError(f"data.on_device must be true, false or auto, got {on_device!r}")
        if int(batch_size) < 1:
            raise ConfigError(f"data.batch_size must be a positive integer, got {batch_size}")
        if int(num_workers) < 0:
            raise ConfigError(f"data.num_workers must be 0 (load in the training process) or more, got {num_workers}")
        most = MAX_WORKERS_PER_CORE * (os.cpu_count() or 1)
        if int(num_workers) > most:  # 1e12 hung starting worker processes (an audit)
            raise ConfigError(f"data.num_workers={num_workers}: expected at most {most} worker processes "
                              f"({MAX_WORKERS_PER_CORE} per core of this machine's {os.cpu_count() or 1}); a few per "
                              "core is plenty")
        self.sample_shape = tuple(int(s) for s in sample_shape)
        #: the output activation a generator needs to reach this data's value range
        self.generator_output = generator_output
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        # pinning only speeds up copies to an accelerator; without one torch warns on every loader
        self.pin_memory = bool(pin_memory) and torch.accelerator.is_available()
        self.persistent_workers = bool(persistent_workers) and self.num_workers > 0
        self.num_classes = num_classes
        self.on_device = on_device
        self.train_set: Dataset | None = None
        # the in-memory set's tensors where training gathers its batches, and its gather (None: the loader gathers
        # the batches on the host)
        self._held: tuple[Tensor, ...] | None = None
        self._gather = None

    @property
    def name(self) -> str:
        return type(self).__name__

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        # Training (a Trainer attached) reads an endless stream ordered by (seed, position, rank), so a
        # resumed run sees the batches it would have seen (gan/data/sampler.py); iterated directly, one
        # pass. The loader's own generator keeps it off the global RNG, which the checkpoint restores.
        sampler = ResumableSampler(self.train_set, endless=self.trainer is not None)
        self.check_training_batch_fits()
        if sampler.endless and self.batch_size > sampler.num_samples:
            # allowed (a few-shot set may be smaller than a batch), but said: a batch then holds samples twice
            log.warning(f"data {self.name}: data.batch_size={self.batch_size} is larger than the training set this "
                        f"process reads ({sampler.num_samples} samples), so every real batch holds some samples twice")
        dataset, pin_memory = self.train_set, self.pin_memory
        if isinstance(dataset, TensorDataset) and not isinstance(dataset, GathersBatches):
            dataset = BatchedTensorDataset(*dataset.tensors)  # in-memory data: gathered a batch at a time
        self._gather, self._held = None, self._tensors_to_hold(dataset, sampler.endless)
        if self._held is not None:  # only indices travel; the samples are gathered on the device
            on_accelerator = self._held[0].device.type != "cpu" and torch.accelerator.is_available()
            self._gather, dataset, pin_memory = dataset.gather, IndexDataset(len(dataset)), on_accelerator
        rank = getattr(self.trainer, "global_rank", 0)
        return DataLoader(
            dataset,
            batch_size=self.batch_size * self.batches_per_training_step,
            sampler=sampler,
            collate_fn=collate,
            generator=torch.Generator().manual_seed(sampler.seed),
            drop_last=True,
            num_workers=self.num_workers,
            pin_memory=pin_memory,
            persistent_workers=self.persistent_workers,
            worker_init_fn=functools.partial(start_worker, rank=rank) if self.num_workers > 0 else None,
        )

    def check_training_batch_fits(self) -> None:
        """A training batch (``batch_size`` x the real batches one training step takes) larger than this machine's
        memory failed where the loader first allocated it, as a MemoryError traceback (an audit: ``data.batch_size``
        or ``model.n_critic`` at 1e12)."""
        memory, per_step = physical_memory_bytes(), self.batches_per_training_step
        samples = self.batch_size * per_step
        # float32 samples, and the loader's list of their indices (a Python int and a list slot, ~36 bytes each)
        size = samples * (int(np.prod(self.sample_shape)) * 4 + INDEX_BYTES)
        if memory is None or size <= memory:
            return
        took = (f" x {per_step} real batches per training step (model.n_critic, model.iterations_per_batch)"
                if per_step > 1 else "")
        raise ConfigError(f"data.batch_size={self.batch_size}{took}: one training batch would hold {samples:,} samples "
                          f"of shape {list(self.sample_shape)}, {human_size(size)} with their indices, more than this "
                          f"machine's {human_size(memory)} of memory; expected a smaller batch")

    def _tensors_to_hold(self, dataset: Dataset, training: bool) -> tuple[Tensor, ...] | None:
        """The training set's tensors on the training device, when ``on_device`` holds them there: on a GPU every
        batch is then gathered there instead of on the host and copied (a copy from unpinned memory also makes
        the host wait for the GPU), as a plain loop over a small set holds it. ``auto``: in-memory sets up to
        :data:`AUTO_ON_DEVICE_MAX_BYTES` on an accelerator; ``true`` on any device (a CPU too, where it changes
        nothing but where the work happens)."""
        if self.on_device is False or not training:
            return None
        if not isinstance(dataset, GathersBatches):
            if self.on_device is True:
                raise ConfigError(f"data.on_device=true: data {self.name} reads its samples through "
                                  f"{type(dataset).__name__}, not from tensors in memory; only in-memory sets (the "
                                  "digits, Stacked MNIST, the 2D toys, and MNIST, Fashion-MNIST and CIFAR-10 at their "
                                  "own resolution and channels) can be held on the device (use auto or false)")
            return None
        tensors = dataset.tensors
        strategy = getattr(self.trainer, "strategy", None)  # None: a stand-in for a trainer, as in unit tests
        device = strategy.root_device if strategy is not None else torch.device("cpu")
        if self.on_device == "auto" and (device.type == "cpu" or sum(t.nbytes for t in tensors) > AUTO_ON_DEVICE_MAX_BYTES):
            return None
        if self.num_classes is not None:  # every batch's labels, checked once for the whole set
            self.check_labels(dataset.labels())
        return tuple(tensor.to(device) for tensor in tensors)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """A held set's batch: its samples gathered on the device from the transferred indices."""
        if isinstance(batch, SampleIndices):
            return self._gather(self._held, batch.index)
        return batch

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        """Labels outside ``[0, num_classes)`` named here, on the host, before the batch goes to the device:
        the networks check labels only where reading them is free (``gan/nets/base.py: check_labels``), and on
        a GPU an embedding's out-of-range index is a device-side assert that names nothing."""
        if self.num_classes is not None and isinstance(batch, (tuple, list)) and len(batch) > 1:
            labels = batch[1]
            if isinstance(labels, Tensor) and labels.device.type == "cpu":
                self.check_labels(labels)
        return batch

    def check_labels(self, labels: Tensor) -> None:
        """Labels (on the host) that are class indices of this data, or a DataError naming their range."""
        if labels.numel():
            low, high = torch.aminmax(labels)
            if low.item() < 0 or high.item() >= self.num_classes:
                raise DataError(f"data {self.name} yields labels in [{low.item()}, {high.item()}]; expected "
                                f"class indices in [0, {self.num_classes}) (data.num_classes={self.num_classes})")

    @property
    def batches_per_training_step(self) -> int:
        """Real batches of ``batch_size`` one training batch holds: a GAN module that makes several updates
        per training step (n_critic D steps, a fresh real batch for G, several iterations) takes them all at
        once, so Lightning's per-batch work runs once for them and the data stream is the same as batch after
        batch."""
        module = self.trainer.lightning_module if self.trainer is not None else None
        return int(getattr(module, "real_batches_per_training_step", 1))

    def real_samples(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` real samples drawn without replacement (with replacement if the set is smaller)."""
        if self.train_set is None:
            self.setup("fit")
        index = sample_indices(len(self.train_set), n, generator)
        return torch.stack([self.train_set[int(i)][0] for i in index])

    def check_sample_shape(self, shape: Sequence[int], network: str = "the model") -> None:
        """Fail before training when the data does not have the shape ``network`` was configured for."""
        if tuple(int(s) for s in shape) != self.sample_shape:
            raise ConfigError(
                f"data {self.name} yields samples of shape {list(self.sample_shape)} but {network} was built "
                f"for {list(shape)}"
            )

    def require_samples(self, dataset: Dataset, where: object) -> Dataset:
        """``dataset`` after checking it is not empty: the sampler would fail in the first batch, after the
        model is built, with a ZeroDivisionError that does not say which data it was."""
        if len(dataset) == 0:
            raise DataError(f"data {self.name}: the training set read from {where} holds 0 samples; expected at least one")
        return dataset

    def check_training_set(self) -> None:
        """What every batch will hold, checked once after ``setup`` on a few samples (:data:`SAMPLES_CHECKED` spread
        over a set in memory, the first of one read from files) rather than found mid-training: a ``train_set`` that is
        set, not empty and indexable, whose items are ``(sample, label)`` pairs of float tensors of ``sample_shape``,
        with finite values the generator's output (``generator_output``) can reach. Runs again only for another
        ``train_set``."""
        dataset = self.train_set
        if dataset is not None and dataset is self.__dict__.get("_checked_training_set"):
            return
        module = type(self).__name__
        if dataset is None:
            raise ConfigError(f"data {self.name}: {module}.setup('fit') left self.train_set None; expected setup to set "
                              "self.train_set to the training set, a Dataset of (sample, label) pairs (label -1 for "
                              "unlabelled data)")
        try:
            size = len(dataset)
        except TypeError:
            raise ConfigError(f"data {self.name}: {module}.train_set ({type(dataset).__name__}) has no length; "
                              "expected a map-style Dataset (__len__ and __getitem__) of (sample, label) pairs: the "
                              "sampler draws indices into it") from None
        if size == 0:
            raise DataError(f"data {self.name}: the training set of {module} ({type(dataset).__name__}) is empty; "
                            "expected at least one sample")
        low = high = None
        # a set in memory: a few samples spread over it; one read from files: its first sample, as the shipped sets
        # check theirs (each read decodes a file, and one that cannot be decoded is named when it is drawn)
        in_memory = isinstance(dataset, (GathersBatches, TensorDataset))
        indices = spread_indices(size, SAMPLES_CHECKED) if in_memory else [0]
        with random_states_kept():  # a __getitem__ that draws (noise, flips) must not shift the run's random numbers
            items = [(index, dataset[index]) for index in indices]
        for index, item in items:
            sample = self._checked_sample(item, index)
            finite = torch.isfinite(sample)
            if not bool(finite.all()):
                bad = sample[~finite].flatten()[0].item()
                raise DataError(f"data {self.name}: training sample {index} holds {bad}; expected finite values")
            if sample.numel():
                least, most = (value.item() for value in torch.aminmax(sample))
                low, high = least if low is None else min(low, least), most if high is None else max(high, most)
        if low is not None:
            self._check_value_range(low, high, len(indices))
        self.__dict__["_checked_training_set"] = dataset

    def _checked_sample(self, item: object, index: int) -> Tensor:
        """The sample of the training set's item ``index``, after checking its kind, dtype and shape."""
        if not (isinstance(item, (tuple, list)) and len(item) >= 2):
            got = f"a {type(item).__name__} of {len(item)}" if isinstance(item, (tuple, list)) else f"of type {type(item).__name__}"
            raise ConfigError(f"data {self.name}: item {index} of the training set is {got}; expected (sample, label) "
                              "pairs (label -1 for unlabelled data): batches are (samples, labels)")
        sample = item[0]
        if not isinstance(sample, Tensor):
            raise ConfigError(f"data {self.name}: training sample {index} is of type {type(sample).__name__}; expected a "
                              "torch tensor (torch.as_tensor(x, dtype=torch.float32))")
        if not sample.is_floating_point():
            scaled = " scaled to [-1, 1] (uint8 images: x / 127.5 - 1)" if self.kind == "image" else ""
            raise ConfigError(f"data {self.name}: training sample {index} is a tensor of {sample.dtype}; expected "
                              f"floating-point samples (torch.float32){scaled}")
        if tuple(sample.shape) != self.sample_shape:
            raise ConfigError(f"data {self.name} yields samples of shape {list(sample.shape)} (training sample {index}), "
                              f"but its config declares sample_shape={list(self.sample_shape)}, the shape the networks "
                              "are built for; expected every sample of that shape")
        return sample

    def _check_value_range(self, low: float, high: float, count: int) -> None:
        """Values the generator cannot reach are refused (an audit's images in [0, 255] beside a tanh generator diverged
        at step 8 without a word about the range). (Images in [0, 1] beside tanh are within reach and not said: one
        bright image read from a folder looks the same.)"""
        output = self.generator_output
        reach = OUTPUT_RANGES.get(output) if isinstance(output, str) else None
        if reach is None or reaches(reach, low, high):  # identity reaches any value (an activation the networks do
            return  # not know is named when they are built)
        least, most = reach
        seen = f"[{low:.4g}, {high:.4g}] ({count} training samples read)"
        how = {"tanh": " (uint8 images: x / 127.5 - 1; torchvision: ToTensor() then Normalize(0.5, 0.5))",
               "sigmoid": " (uint8 images: x / 255)"}[output] if self.kind == "image" else ""
        # the bounded output that reaches these values, when one does (a shipped data set under
        # data.generator_output=sigmoid needs its own tanh back, not to be scaled)
        fits = [name for name, bounds in OUTPUT_RANGES.items() if bounds is not None and reaches(bounds, low, high)]
        instead = (f"data.generator_output={fits[0]}, whose output reaches them, or samples scaled to "
                   f"[{least:g}, {most:g}]{how}" if fits else
                   f"samples scaled to [{least:g}, {most:g}]{how}, or data.generator_output=identity for unbounded values")
        raise DataError(f"data {self.name} yields values in {seen}, outside the [{least:g}, {most:g}] its "
                        f"generator's output reaches (data.generator_output={output}); expected {instead}")

    @staticmethod
    def require_classes(declared: int | None, actual: int | None, name: str) -> int | None:
        """The data's class count (None: it has no labels), after checking that ``data.num_classes``, when set, says
        the same. The digits took it twice (a TypeError traceback), MNIST and CIFAR-10 trained a model built for
        another count, and unlabelled data trained a conditional model on labels it does not have (an audit)."""
        if declared is None or (actual is not None and int(declared) == actual):
            return actual
        if actual is None:
            raise ConfigError(f"data.num_classes={declared}: data {name} has no class labels; expected data.num_classes "
                              "left out (a conditional model needs labelled data, e.g. data=digits)")
        raise ConfigError(f"data.num_classes={declared}: data {name} has {actual} classes; expected {actual}, or "
                          "data.num_classes left out")

    @staticmethod
    def require_shape(declared: Sequence[int], actual: Sequence[int], name: str) -> tuple[int, ...]:
        """The data's real shape, after checking the config declared the same one."""
        if tuple(int(s) for s in declared) != tuple(actual):
            raise ConfigError(f"data {name} yields samples of shape {list(actual)}, but its config declares sample_shape={list(declared)}")
        return tuple(actual)


GANDataModule.setup = checks_the_training_set(GANDataModule.setup)  # a module without a setup of its own
