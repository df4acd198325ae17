"""The digit classifier behind ``fid_digits`` and ``stacked_modes``: a small CNN trained deterministically on
the 5,000 embedded MNIST digits, shipped as ``digit_classifier.pt`` so every machine scores with the same net.

Inception features are meaningless on 28x28 digits; this net's 64-d penultimate layer is the feature space
of ``fid_digits`` and its argmax reads the digits of Stacked MNIST. Reproduce the shipped weights with
``python -m gan.metrics.digit_classifier --out FILE`` (about 30 s on one CPU core): bit-identical on the torch build and
CPU that trained them, close elsewhere (torch 2.14.1 on the 2-core development host: 97.5 % held out against the
shipped 97.3 %, weights up to 0.10 apart), so the script does not overwrite the shipped file unless asked: every
``fid_digits`` value and the ``weights_sha256`` of its protocol would change.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gan.utils.files import atomic_write

WEIGHTS_PATH = Path(__file__).with_name("digit_classifier.pt")
#: every HELD_OUT_EVERY-th digit of the embedded set is held out for the test accuracy (100 per class)
HELD_OUT_EVERY = 5
#: the accuracy the shipped weights reach on the held-out digits (the test asserts at least this)
STATED_TEST_ACCURACY = 0.97
FEATURE_DIM = 64
INPUT_SHAPE = (1, 28, 28)


class DigitClassifier(nn.Module):
    """Input (N, 1, 28, 28) in [-1, 1]; ``features`` gives the 64-d penultimate activations."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 3 * 3, FEATURE_DIM), nn.ReLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, 10)

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if tuple(x.shape[1:]) != INPUT_SHAPE:
            raise ValueError(f"the digit classifier takes images of shape {list(INPUT_SHAPE)}, got {list(x.shape[1:])}")
        features = self.body(x)
        return features, self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.features_and_logits(x)[1]


def split(images: np.ndarray, labels: np.ndarray) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """(train, held-out) as float [-1, 1] images and labels; the held-out part is every 5th digit."""
    from gan.data.digits import to_unit_range

    held_out = np.arange(len(images)) % HELD_OUT_EVERY == 0
    x, y = to_unit_range(images), torch.from_numpy(labels).long()
    return (x[~held_out], y[~held_out]), (x[held_out], y[held_out])


def train_classifier(images: np.ndarray, labels: np.ndarray, epochs: int = 12, seed: int = 0) -> DigitClassifier:
    """Deterministic on a given machine: seeded init, seeded shuffles and shifts, one thread."""
    (x, y), _ = split(images, labels)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rng = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        model = DigitClassifier()
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * (len(x) // 64))
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=rng)
            for start in range(0, len(x) - 63, 64):
                index = order[start:start + 64]
                # random shifts of up to 2 pixels: 4,000 digits overfit without them
                shift = torch.randint(-2, 3, (2,), generator=rng).tolist()
                batch = torch.roll(x[index], shifts=shift, dims=(2, 3))
                loss = F.cross_entropy(model(batch), y[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


@torch.no_grad()
def accuracy(model: DigitClassifier, images: Tensor, labels: Tensor) -> float:
    return float((model.eval()(images).argmax(1) == labels).float().mean())


def held_out_accuracy(model: DigitClassifier, root: str | os.PathLike) -> float:
    from gan.data.digits import load_digits_array

    _, (x, y) = split(*load_digits_array(root))
    return accuracy(model, x, y)


def load_classifier(path: str | os.PathLike = WEIGHTS_PATH) -> DigitClassifier:
    path = Path(path)
    if not path.is_file():
        shipped = path.resolve() == WEIGHTS_PATH.resolve()
        rebuild = f"python -m gan.metrics.digit_classifier --out {path}" + (" --replace-shipped" if shipped else "")
        raise FileNotFoundError(f"digit classifier weights not found: {path}; rebuild them with {rebuild}")
    model = DigitClassifier()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])
    return model.eval().requires_grad_(False)


def save_classifier(model: DigitClassifier, path: str | os.PathLike, test_accuracy: float) -> None:
    # the torch build too (a plain str: torch.__version__ is a TorchVersion, which a weights-only load refuses)
    with atomic_write(path) as temporary:
        torch.save({"state_dict": model.state_dict(), "held_out_accuracy": test_accuracy, "torch": str(torch.__version__)},
                   temporary)


def main(argv: list[str] | None = None) -> float:
    from gan.data.digits import load_digits_array
    from gan.utils.config import PROJECT_ROOT

    parser = argparse.ArgumentParser(description="Train the digit classifier used by fid_digits and stacked_modes.")
    parser.add_argument("--root", default=str(PROJECT_ROOT / "data"), help="data dir for the embedded digits cache")
    parser.add_argument("--out", required=True, help="where to write the weights (a rebuild on another torch build or "
                        "CPU differs slightly from the shipped file, and so would every fid_digits value)")
    parser.add_argument("--replace-shipped", action="store_true",
                        help=f"allow --out to be the shipped weights, {WEIGHTS_PATH.name}")
    args = parser.parse_args(argv)
    if Path(args.out).resolve() == WEIGHTS_PATH.resolve() and not args.replace_shipped:
        # the default --out was the shipped file: a rebuild replaced the reference weights without a word (a walk-through)
        parser.exit(2, f"error: --out={args.out} is the shipped digit classifier, the reference of every fid_digits "
                       "value; expected another file, or --replace-shipped to replace it on purpose\n")
    model = train_classifier(*load_digits_array(args.root))
    test_accuracy = held_out_accuracy(model, args.root)
    save_classifier(model, args.out, test_accuracy)
    print(f"held-out accuracy {test_accuracy:.4f} on {5000 // HELD_OUT_EVERY} digits; wrote {args.out}")
    return test_accuracy


if __name__ == "__main__":
    main()
