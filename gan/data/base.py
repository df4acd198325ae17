"""The interface every data module offers the rest of the framework.

Batches are ``(samples, labels)``; unlabelled images yield labels of -1, the 2D toys the index of the mixture
component each point was drawn from. ``sample_shape`` is what the
networks are built for (configs interpolate ``${data.sample_shape}``), ``num_classes`` is None for
unlabelled data, and ``real_samples(n)`` gives real data for plots and metrics.
"""
from __future__ import annotations

import functools
import logging
import os
from typing import Sequence

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset, default_collate

from gan.data.sampler import ResumableSampler
from gan.utils.device import human_size, physical_memory_bytes
from gan.utils.errors import ConfigError, DataError

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


class GANDataModule(pl.LightningDataModule):
    #: "image" (C, H, W in [-1, 1]) or "points" (unbounded vectors)
    kind = "image"

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
