"""The spiral metric, on the samples themselves (extractor "raw"), registered under the name ``spiral``:

- ``spiral/sliced_w1`` (the headline, lower is better): the sliced Wasserstein-1 distance between the fakes and as
  many real samples, averaged over ``num_directions`` fixed directions evenly spaced in [0, pi): for each direction u
  the 1-D W1 of the projections, mean |sort(fake . u) - sort(real . u)|. It sees both a spread that misses the arms
  and a collapse onto part of them.
- ``spiral/curve_distance`` (lower is better): the mean distance of each fake to the nearest point of the noiseless
  spiral (``datamodule.curve``); a collapse onto the curve scores well here, so it is not the headline.

``imports=[mygan.metrics]`` makes a run import this module before its options are checked, which registers it, so
``metrics.compute.spiral`` names a known metric.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from gan.metrics.registry import Metric, register_metric
from gan.utils.errors import ConfigError


def sliced_w1(a: Tensor, b: Tensor, num_directions: int) -> float:
    """Sliced W1 of two equal-size sets of 2-D points over ``num_directions`` directions at angles pi k / K."""
    n = min(len(a), len(b))
    angles = torch.arange(num_directions, dtype=torch.float64) * (math.pi / num_directions)
    directions = torch.stack([angles.cos(), angles.sin()])  # (2, K)
    pa, pb = a[:n].double() @ directions, b[:n].double() @ directions  # (n, K)
    return float((pa.sort(dim=0).values - pb.sort(dim=0).values).abs().mean())


def distance_to_curve(points: Tensor, curve: Tensor) -> float:
    """Mean over ``points`` of the Euclidean distance to the nearest of ``curve``'s points."""
    return float(torch.cdist(points.double(), curve.double()).min(dim=1).values.mean())


@register_metric
class SpiralMetric(Metric):
    name = "spiral"  # metrics.compute.spiral; logged as val/spiral/...
    extractor = "raw"  # no network: compute gets {"samples": (N, 2)} for the fakes and the reals
    needs_real = True
    equal_counts = True  # as many reals as fakes (the sorted projections are compared one to one)
    # every value compute returns that a checkpoint may monitor -> whether higher is better; the first is the headline
    directions = {"spiral/sliced_w1": False, "spiral/curve_distance": False}

    def __init__(self, num_samples: int | None = 2000, num_directions: int = 64):
        super().__init__(num_samples)
        if int(num_directions) < 1:
            raise ConfigError(f"metrics.compute.spiral.num_directions must be >= 1, got {num_directions}")
        self.num_directions = int(num_directions)

    def options(self, num_fake, num_real=None):  # recorded in the protocol beside the sample counts
        return {"num_directions": self.num_directions}

    def check_data(self, datamodule) -> None:  # the base class refuses anything but images
        if getattr(datamodule, "curve", None) is None:
            raise ConfigError(f"metric spiral needs data with a noiseless curve (data=spiral), got data {datamodule.name}")

    def compute(self, fake, real, datamodule):
        samples = fake["samples"]
        return {"spiral/sliced_w1": sliced_w1(samples, real["samples"], self.num_directions),
                "spiral/curve_distance": distance_to_curve(samples, datamodule.curve)}
