"""A two-armed spiral of 2-D points, drawn once from a seed (the same set on every run and every rank).

Arm k (k = 0, 1) at parameter t in [0, 1]: radius r(t) = radius * (0.15 + 0.85 t), angle 2 pi turns t + k pi, plus
Gaussian noise of ``std``. ``curve`` holds the noiseless arms, densely sampled, for the spiral metric
(mygan/metrics.py).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from gan.data.base import GANDataModule
from gan.utils.errors import ConfigError


def spiral_points(t: Tensor, arm: Tensor, turns: float, radius: float) -> Tensor:
    """The noiseless spiral at parameters ``t`` (in [0, 1]) on arms ``arm`` (0 or 1), shape (N, 2)."""
    r = radius * (0.15 + 0.85 * t)
    angle = 2 * math.pi * turns * t + math.pi * arm
    return torch.stack([r * angle.cos(), r * angle.sin()], dim=1)


class SpiralDataModule(GANDataModule):
    # "points": unbounded vectors (not images in [-1, 1]): the sample grid draws a scatter, image metrics refuse it
    kind = "points"

    def __init__(self, turns: float = 1.5, radius: float = 2.0, std: float = 0.05, num_samples: int = 20_000,
                 seed: int = 0, curve_points: int = 4000, **loader_options):
        # sample_shape, generator_output, batch_size, num_workers, on_device... go to the base class
        super().__init__(**loader_options)
        if self.sample_shape != (2,):
            raise ConfigError(f"data.sample_shape={list(self.sample_shape)}: the spiral yields 2-D points, expected [2]")
        if not (float(std) >= 0 and float(radius) > 0 and int(num_samples) >= 1 and int(curve_points) >= 2):
            raise ConfigError(f"data: expected std >= 0, radius > 0, num_samples >= 1, curve_points >= 2; got std={std}, "
                              f"radius={radius}, num_samples={num_samples}, curve_points={curve_points}")
        self.turns, self.radius, self.std = float(turns), float(radius), float(std)
        self.num_samples, self.seed = int(num_samples), int(seed)
        t = torch.linspace(0, 1, int(curve_points) // 2, dtype=torch.float64)
        arms = torch.cat([torch.zeros_like(t), torch.ones_like(t)])
        self.curve = spiral_points(torch.cat([t, t]), arms, self.turns, self.radius).float()

    @property
    def name(self) -> str:  # how messages and the metrics cache name this data
        return "spiral"

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:  # setup runs more than once (train.py, then Lightning): draw the set once
            rng = torch.Generator().manual_seed(self.seed)
            t = torch.rand(self.num_samples, generator=rng, dtype=torch.float64)
            arm = torch.randint(2, (self.num_samples,), generator=rng)
            points = spiral_points(t, arm.double(), self.turns, self.radius)
            points = (points + self.std * torch.randn(points.shape, generator=rng, dtype=torch.float64)).float()
            # (sample, label) pairs; the label is the arm (the data is still unlabelled for the model: num_classes=None)
            self.train_set = TensorDataset(points, arm)
