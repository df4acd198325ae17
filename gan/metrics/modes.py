"""Mode counting for the mode-collapse benchmarks: 2D Gaussian mixtures (PacGAN) and Stacked MNIST (VEEGAN).

Pure functions on tensors, so they can be checked against the analytic values of the true distributions.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def kl_to_uniform(counts: Tensor) -> float:
    """KL(p || uniform) of the histogram ``counts`` over ``len(counts)`` bins (empty bins contribute 0)."""
    total = counts.sum()
    if total == 0:
        return float("nan")
    p = counts.double() / total
    p = p[p > 0]
    return float((p * (p * len(counts)).log()).sum())


def effective_count(counts: Tensor) -> float:
    """The effective number of bins of the histogram ``counts``: exp of its entropy (the perplexity, Hill's
    number of order 1). k equally filled bins give k, one bin 1, and a bin holding a few stray samples adds
    little, where a count of the bins that hold any sample would count it as a whole mode. 0 for no samples."""
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts.double() / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def nearest_modes(samples: Tensor, modes: Tensor) -> tuple[Tensor, Tensor]:
    """(distance to the nearest mode, its index) of each 2D sample, in float64."""
    if samples.dim() != 2 or samples.size(1) != modes.size(1):
        raise ValueError(f"mode counting takes samples of shape (N, {modes.size(1)}), got {tuple(samples.shape)}")
    return torch.cdist(samples.detach().double().cpu(), modes.double().cpu()).min(dim=1)


def mode_coverage(samples: Tensor, modes: Tensor, std: float, std_multiple: float = 3.0) -> dict[str, float]:
    """PacGAN's protocol (Lin et al. 2018, sec. 5.1) on 2D samples of a mixture of isotropic Gaussians.

    A sample is high quality when it lies within ``std_multiple`` standard deviations of its nearest mode;
    a mode is captured when it is the nearest mode of at least one high-quality sample. Returns the number
    of modes captured, the fraction of high-quality samples, and the reverse KL(high-quality mode
    histogram || uniform). For samples of the true mixture the expected fraction is 1 - exp(-k^2 / 2).
    """
    nearest_distance, nearest = nearest_modes(samples, modes)
    high_quality = nearest_distance <= std_multiple * std
    counts = torch.bincount(nearest[high_quality], minlength=len(modes))
    return {
        "modes": float((counts > 0).sum()),
        "high_quality": float(high_quality.double().mean()),
        "reverse_kl": kl_to_uniform(counts),
    }


def stacked_modes(digits: Tensor, num_digits: int = 10) -> dict[str, float]:
    """Stacked MNIST mode count (VEEGAN, Srivastava et al. 2017): ``digits`` (N, C) are the classifier's
    reading of each channel; the mode is the C-digit number, out of ``num_digits ** C``. Returns the number
    of modes covered and KL(generated mode histogram || uniform)."""
    if digits.dim() != 2:
        raise ValueError(f"stacked_modes takes per-channel digit labels of shape (N, C), got {tuple(digits.shape)}")
    place_values = num_digits ** torch.arange(digits.size(1) - 1, -1, -1, device=digits.device)
    mode = (digits.long() * place_values).sum(dim=1)
    counts = torch.bincount(mode, minlength=num_digits ** digits.size(1))
    return {"modes": float((counts > 0).sum()), "kl": kl_to_uniform(counts)}


def high_quality_ceiling(std_multiple: float = 3.0) -> float:
    """The fraction of a 2D isotropic Gaussian's mass within ``std_multiple`` standard deviations (Rayleigh)."""
    return 1.0 - math.exp(-std_multiple ** 2 / 2)
