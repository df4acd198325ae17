"""Time the training loader of in-memory data per training batch: from the sampler's indices to the batch as the
training step receives it (on the host; with ``--on-device``, the indices moved to the device and the batch gathered
there, as ``data.on_device`` does, the device synchronised at each end of the clock).

    python benchmarks/loader.py                                   # digits, stacked_mnist at 28 and 32 px, toy2d_grid, cifar10
    python benchmarks/loader.py --data stacked_mnist --resolution 32 --repeats 5 --batches 100
    python benchmarks/loader.py --on-device --device cuda         # the held path on a GPU

To compare two commits, run it in each checkout (``cd <checkout> && python benchmarks/loader.py``): it times
whatever ``gan/data`` the working directory holds. Results: median and range over ``--repeats`` rounds of
``--batches`` batches, each batch holding ``--real-batches`` real batches of ``--batch-size`` (as a training
batch of several real batches does: n_critic, iterations per batch), one torch thread, in this process
(``num_workers=0``: the work itself, which the shipped configs of the real data sets spread over 2 or 4 workers).
``cifar10`` is 10,000 random images written in CIFAR-10's on-disk format (the timing does not depend on them).
"""
from __future__ import annotations

import argparse
import atexit
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.utils.config import PROJECT_ROOT  # noqa: E402

try:
    from gan.data.base import SampleIndices
except ImportError:  # a checkout from before data.on_device: only the host path, which is what it had
    SampleIndices = ()


def data_module(name: str, resolution: int, batch_size: int, on_device: bool, root: Path):
    from gan.data import CIFAR10DataModule, DigitsDataModule, StackedMNISTDataModule, Toy2DDataModule

    options = {"batch_size": batch_size, "num_workers": 0, **({"on_device": True} if on_device else {})}
    if name == "digits":
        return DigitsDataModule(root=str(root), **options)
    if name == "stacked_mnist":
        return StackedMNISTDataModule(root=str(root), source="digits", resolution=resolution, **options)
    if name == "toy2d_grid":
        return Toy2DDataModule(layout="grid", grid_values=(-4, -2, 0, 2, 4), std=0.05, **options)
    if name == "cifar10":
        from tests.data.fake_datasets import write_cifar10

        folder = Path(tempfile.mkdtemp(prefix="loader-cifar10-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        write_cifar10(folder, per_batch=2000, test=10)
        return CIFAR10DataModule(root=str(folder), download=False, persistent_workers=False, **options)
    raise SystemExit(f"error: --data {name!r}: expected digits, stacked_mnist, toy2d_grid or cifar10")


def time_loader(name: str, resolution: int, batch_size: int, real_batches: int, on_device: bool, device: str,
                batches: int, repeats: int, root: Path) -> dict:
    data = data_module(name, resolution, batch_size, on_device, root)
    data.setup("fit")
    # what the data module reads of a trainer: the device it trains on and the real batches of a training batch
    data.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(device)),
                                   lightning_module=SimpleNamespace(real_batches_per_training_step=real_batches))
    stream = iter(data.train_dataloader())

    def next_batch():
        batch = next(stream)
        if isinstance(batch, SampleIndices):
            batch = data.on_after_batch_transfer(batch.to(device, non_blocking=True), 0)
        return batch

    def synchronize():
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    shape = tuple(next_batch()[0].shape)  # the first batch starts the loader: not timed
    rounds = []
    for _ in range(repeats):
        synchronize()
        started = time.perf_counter()
        for _ in range(batches):
            next_batch()
        synchronize()
        rounds.append((time.perf_counter() - started) / batches * 1e3)
    return {"data": name, "resolution": resolution if name == "stacked_mnist" else None, "batch_shape": list(shape),
            "on_device": on_device, "device": device, "ms_per_batch": round(statistics.median(rounds), 4),
            "min_ms": round(min(rounds), 4), "max_ms": round(max(rounds), 4), "rounds": repeats, "batches": batches}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=["digits", "stacked_mnist", "toy2d_grid", "cifar10"])
    parser.add_argument("--resolution", type=int, nargs="+", default=[28, 32], help="Stacked MNIST's resolutions")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--real-batches", type=int, default=3, help="real batches per training batch")
    parser.add_argument("--on-device", action="store_true", help="the held path (data.on_device=true)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT / "data", help="where the digits cache is")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for name in args.data:
        for resolution in (args.resolution if name == "stacked_mnist" else [28]):
            row = time_loader(name, resolution, args.batch_size, args.real_batches, args.on_device, args.device,
                              args.batches, args.repeats, args.root)
            rows.append(row)
            print(f"{name:14s} {str(row['batch_shape']):18s} {'held on ' + args.device if args.on_device else 'host':12s} "
                  f"{row['ms_per_batch']:.3f} ms per batch ({row['min_ms']:.3f}-{row['max_ms']:.3f})", flush=True)
    return rows


if __name__ == "__main__":
    main()
