"""The Frechet distance as the metrics compute it (eigenvalues, torch) against torch-fidelity's (scipy's
sqrtm): agreement and time, at Inception's 2,048 dimensions; and the cost of FID-infinity.

    python benchmarks/metrics_frechet.py [--dim 2048] [--samples 10000]

Features are ReLU-like (non-negative, correlated) random vectors, so the covariances resemble Inception's.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.metrics.registry import METRICS  # noqa: E402
from gan.metrics.functional import frechet_distance_of_features, gaussian_statistics  # noqa: E402


def features(n: int, dim: int, seed: int) -> torch.Tensor:
    rng = torch.Generator().manual_seed(seed)
    mixing = torch.randn(dim // 4, dim, generator=rng) / (dim // 4) ** 0.5
    return torch.relu(torch.randn(n, dim // 4, generator=rng) @ mixing + 0.1 * torch.randn(n, dim, generator=rng))


def timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--samples", type=int, default=10000)
    args = parser.parse_args(argv)
    fake, real = features(args.samples, args.dim, 0), features(args.samples, args.dim, 1) * 1.1
    ours, ours_s = timed(lambda: frechet_distance_of_features(fake, real))
    statistics = [dict(zip(("mu", "sigma"), (t.numpy() for t in gaussian_statistics(x)))) for x in (fake, real)]
    theirs, theirs_s = timed(lambda: fid_statistics_to_metric(*statistics, verbose=False)["frechet_inception_distance"])
    print(f"{args.dim} dims, {args.samples} samples, {torch.get_num_threads()} threads")
    print(f"  eigenvalue form (ours):        {ours:.6f} in {ours_s:.1f} s (statistics included)")
    print(f"  scipy sqrtm (torch-fidelity):  {theirs:.6f} in {theirs_s:.1f} s (statistics excluded)")
    print(f"  relative difference:           {abs(ours - theirs) / abs(theirs):.2e}")
    metric = METRICS["fid_inf"](extractor="digit_classifier")  # the extractor only names the feature layer
    value, seconds = timed(lambda: metric.compute({"features": fake}, {"features": real}, None)["fid_inf"])
    print(f"  fid_inf over {len(metric.counts_for(args.samples))} counts: {value:.6f} in {seconds:.1f} s")


if __name__ == "__main__":
    main()
