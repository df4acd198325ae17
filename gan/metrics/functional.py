"""Metric formulas on feature tensors: no networks, no data, so each can be checked against closed forms.

Frechet distances use an eigenvalue form instead of ``scipy.linalg.sqrtm``: the same number (to ~1e-9
relative on well-conditioned statistics; the tests compare with torch-fidelity), but ~10-50x faster at
2,048 dimensions, which FID-infinity (15 distances per evaluation) and per-class FID need, and computed by
torch, which releases the GIL, so Ctrl+C can still stop a long evaluation (scipy's sqrtm holds it for a
minute on a busy CPU).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor


def gaussian_statistics(features: Tensor) -> tuple[Tensor, Tensor]:
    """(mean, unbiased covariance) in float64, as torch-fidelity's ``fid_features_to_statistics``."""
    features = features.double()
    if features.dim() != 2 or len(features) < 2:
        raise ValueError(f"Gaussian statistics need at least 2 feature vectors of shape (N, D), got {tuple(features.shape)}")
    return features.mean(0), torch.cov(features.T).reshape(features.size(1), features.size(1))


def psd_factor(sigma: Tensor) -> Tensor:
    """F with F F^T = sigma: Cholesky when sigma is positive definite, else from the eigendecomposition
    (singular covariances: fewer samples than dimensions, or dead ReLU units)."""
    factor, info = torch.linalg.cholesky_ex(sigma)
    if int(info) == 0:
        return factor
    eigenvalues, eigenvectors = torch.linalg.eigh(sigma)
    return eigenvectors * eigenvalues.clamp_min(0).sqrt()


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor, factor2: Tensor | None = None) -> float:
    """||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)), the Frechet distance of two Gaussians.

    With sigma2 = F F^T, sigma1 sigma2 is similar to the symmetric PSD F^T sigma1 F, so the trace of its square
    root is the sum of the square roots of that matrix's eigenvalues. ``factor2`` (``psd_factor(sigma2)``) can
    be passed when one side is compared many times (FID-infinity, per-class FID share the real side).

    Non-finite statistics (a diverged generator's NaN or inf samples) give NaN: the distance is undefined,
    and the eigendecomposition would otherwise fail with a LinAlgError in the middle of a training run."""
    if not all(bool(torch.isfinite(t).all()) for t in (mu1, sigma1, mu2, sigma2)):
        return float("nan")
    factor2 = psd_factor(sigma2) if factor2 is None else factor2
    eigenvalues = torch.linalg.eigvalsh(factor2.T @ sigma1 @ factor2)
    trace_sqrt = eigenvalues.clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt)


def frechet_distance_of_features(fake: Tensor, real: Tensor) -> float:
    """FID-style distance between two sets of feature vectors (N, D)."""
    return frechet_distance(*gaussian_statistics(fake), *gaussian_statistics(real))


# ------------------------------------------------------------------------------------------- infinity
def nested_counts(total: int, num_points: int, smallest_fraction: float) -> list[int]:
    """Chong & Forsyth's sample counts: ``num_points`` evenly spaced from ``smallest_fraction * total`` to
    ``total`` (their 5,000..50,000 in 15 steps), as distinct integers of at least 2."""
    counts = np.linspace(smallest_fraction * total, total, num_points).astype(int)
    return sorted({int(c) for c in counts if c >= 2})


def extrapolate_to_infinity(counts: Sequence[int], values: Sequence[float]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line value = intercept + slope / N: the intercept is the
    value at N = infinity (Chong & Forsyth 2020: the bias of FID and IS is linear in 1/N)."""
    if len(counts) < 2:
        raise ValueError(f"extrapolating to N = infinity needs at least 2 sample counts, got {list(counts)}")
    slope, intercept = np.polyfit(1.0 / np.asarray(counts, dtype=np.float64), np.asarray(values, dtype=np.float64), 1)
    return float(intercept), float(slope)


def at_infinity(features: Tensor, counts: Sequence[int], score: Callable[[Tensor], float], seed: int) -> tuple[float, list[float]]:
    """``score`` of a fresh random subset of ``features`` for each count (as the reference code reshuffles
    for each N), extrapolated to N = infinity; returns (intercept, the score at each count)."""
    rng = torch.Generator().manual_seed(seed)
    scores = [score(features[torch.randperm(len(features), generator=rng)[:count]]) for count in counts]
    return extrapolate_to_infinity(counts, scores)[0], scores


# ------------------------------------------------------------------------------------ density/coverage
def _chunk_rows(columns: int, budget: int = 1 << 24) -> int:
    """Rows per block so that a (rows, columns) float64 distance block stays around 128 MB."""
    return max(1, budget // max(columns, 1))


def nearest_neighbour_radii(points: Tensor, k: int) -> Tensor:
    """Distance from every point to its k-th nearest other point."""
    if len(points) <= k:
        raise ValueError(f"k-nearest-neighbour radii need more than k = {k} points, got {len(points)}")
    points = points.double()
    step = _chunk_rows(len(points))
    radii = [torch.cdist(points[start:start + step], points).kthvalue(k + 1, dim=1).values  # k + 1: the point itself
             for start in range(0, len(points), step)]
    return torch.cat(radii)


def density_coverage(fake: Tensor, real: Tensor, k: int = 5) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020, as their ``prdc`` package computes them).

    Each real point gets a ball reaching its k-th nearest real neighbour. Density: how many real balls
    contain each fake point, over k, averaged (1 in expectation when fakes and reals share a distribution,
    above 1 where fakes crowd dense real regions). Coverage: the fraction of real balls that contain at
    least one fake point. Distances are computed in row chunks, so 50,000 x 50,000 fits in memory.
    """
    fake, real = fake.double(), real.double()
    radii = nearest_neighbour_radii(real, k)
    inside = torch.zeros((), dtype=torch.float64)
    nearest_fake = torch.full((len(real),), float("inf"), dtype=torch.float64)
    step = _chunk_rows(len(real))
    for start in range(0, len(fake), step):
        distances = torch.cdist(fake[start:start + step], real)
        inside += (distances < radii).sum()
        nearest_fake = torch.minimum(nearest_fake, distances.min(dim=0).values)
    return {"density": float(inside / (k * len(fake))), "coverage": float((nearest_fake < radii).double().mean())}


# ------------------------------------------------------------------------------------ memorization
def two_nearest_others(points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Each point's nearest other point (distance, index) and the distance to its second nearest, in row chunks.
    The point itself is excluded by index, not by distance, so a duplicate of it counts as a neighbour at 0."""
    points = points.double()
    if len(points) < 3:
        raise ValueError(f"the two nearest other points need at least 3 points, got {len(points)}")
    step = _chunk_rows(len(points))
    first, index, second = [], [], []
    for start in range(0, len(points), step):
        distances = torch.cdist(points[start:start + step], points)
        rows = torch.arange(len(distances))
        distances[rows, rows + start] = float("inf")
        nearest = distances.topk(2, dim=1, largest=False)
        first.append(nearest.values[:, 0])
        index.append(nearest.indices[:, 0])
        second.append(nearest.values[:, 1])
    return torch.cat(first), torch.cat(index), torch.cat(second)


def nearest_in(queries: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
    """Each query's nearest point (distance, index), in row chunks."""
    queries, points = queries.double(), points.double()
    step = _chunk_rows(len(points))
    found = [torch.cdist(queries[start:start + step], points).min(dim=1) for start in range(0, len(queries), step)]
    return torch.cat([f.values for f in found]), torch.cat([f.indices for f in found])


def rank_sum_z(sample: Tensor, reference: Tensor) -> float:
    """The Mann-Whitney U statistic of ``sample`` against ``reference`` as a z-score (normal approximation, ties
    counted one half, without the tie correction of the variance): negative when ``sample``'s values tend to be
    smaller. Meehan et al. 2020 compare this way the distances of generated and of held-out samples to the training
    set (their Z_U, computed there per cell of a partition; here over the whole set)."""
    from scipy.stats import rankdata

    n1, n2 = len(sample), len(reference)
    ranks = rankdata(torch.cat([sample, reference]).double().numpy())
    u = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2
    return (u - n1 * n2 / 2) / float(np.sqrt(n1 * n2 * (n1 + n2 + 1) / 12))


def memorization(fake: Tensor, real: Tensor) -> dict[str, float]:
    """Whether fakes sit closer to the training samples than new data would (feature distances).

    ``authenticity`` (Alaa et al. 2022): the fraction of fakes farther from their nearest real sample r than r is
    from its own nearest other real; a copy of a real is at 0 and never authentic. ``authenticity_data``: the same
    rule for each real against the others (left out in turn: its nearest other real r, and r's own nearest among the
    rest), the level of a generator that draws new samples of the data's distribution. ``distance_ratio``: the
    median distance of a fake to its nearest real over the median left-out real's: below 1 the fakes are closer to
    the training samples than new data would be. ``copy_z``: the rank-sum z-score of the two sets of distances
    (Meehan et al. 2020's statistic over the whole set), negative when the fakes are closer."""
    nearest, nearest_index, second = two_nearest_others(real)
    fake_distance, fake_nearest = nearest_in(fake, real)
    authentic = fake_distance > nearest[fake_nearest]
    # a real left out: its nearest other r = nearest_index; r's nearest other but the one left out
    others = nearest_index
    leftout_radius = torch.where(nearest_index[others] == torch.arange(len(real)), second[others], nearest[others])
    authentic_data = nearest > leftout_radius
    median_data = float(nearest.median())
    return {"authenticity": float(authentic.double().mean()), "authenticity_data": float(authentic_data.double().mean()),
            "distance_ratio": float(fake_distance.median()) / median_data if median_data > 0 else float("nan"),
            "copy_z": rank_sum_z(fake_distance, nearest)}
