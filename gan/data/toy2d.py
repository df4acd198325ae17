"""The standard mode-collapse toys: mixtures of isotropic Gaussians in 2D (PacGAN, VEEGAN, Unrolled GAN).

``ring``: ``num_modes`` means evenly spaced on a circle; ``grid``: means at every point of
``grid_values`` x ``grid_values``. The points are drawn once from a seeded generator, so the data set is
the same on every run and every rank.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from gan.data.base import GANDataModule
from gan.utils.errors import ConfigError


def ring_modes(num_modes: int, radius: float) -> Tensor:
    angles = torch.arange(num_modes, dtype=torch.float64) * (2 * math.pi / num_modes)
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def grid_modes(values: Sequence[float]) -> Tensor:
    axis = torch.tensor(list(values), dtype=torch.float32)
    return torch.cartesian_prod(axis, axis)


def sample_mixture(modes: Tensor, std: float, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``n`` points from the equal-weight mixture; returns (points, index of the mode each came from)."""
    which = torch.randint(len(modes), (n,), generator=generator)
    return modes[which] + std * torch.randn(n, modes.size(1), generator=generator), which


class Toy2DDataModule(GANDataModule):
    kind = "points"

    def __init__(self, layout: str = "ring", num_modes: int = 8, radius: float = 1.0,
                 grid_values: Sequence[float] = (-4, -2, 0, 2, 4), std: float = 0.01,
                 num_samples: int = 100_000, seed: int = 0, sample_shape=(2,), **loader_options):
        loader_options.setdefault("generator_output", "identity")
        self.require_classes(loader_options.pop("num_classes", None), None, f"toy2d_{layout}")
        super().__init__(self.require_shape(sample_shape, (2,), f"toy2d_{layout}"), **loader_options)
        # each layout's own options named (a grid's refusal listed the ring's num_modes, an audit)
        shape_option = f"num_modes={num_modes}" if layout == "ring" else f"grid_values={list(grid_values)}"
        if not float(std) > 0 or int(num_samples) < 1 or (layout == "ring" and int(num_modes) < 1):
            raise ConfigError(f"data.std must be > 0, data.num_samples >= 1" + (" and data.num_modes >= 1" if layout == "ring" else "")
                              + f"; got std={std}, num_samples={num_samples}, {shape_option}")
        if layout == "grid" and len(grid_values) == 0:  # a RuntimeError in torch.randint when the data was drawn
            raise ConfigError("data.grid_values=[]: expected at least one value (the grid's modes are every pair of them)")
        if layout == "ring":
            self.modes = ring_modes(num_modes, radius)
        elif layout == "grid":
            self.modes = grid_modes(grid_values)
        else:
            raise ConfigError(f"unknown toy layout {layout!r}; expected 'ring' or 'grid'")
        self.layout, self.std, self.num_samples, self.seed = layout, float(std), int(num_samples), int(seed)

    @property
    def name(self) -> str:
        return f"toy2d_{self.layout}"

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            points, which = sample_mixture(self.modes, self.std, self.num_samples, torch.Generator().manual_seed(self.seed))
            self.train_set = TensorDataset(points, which)
