"""Mode coverage (PacGAN 2D toys) and Stacked MNIST mode counts against the analytic values."""
from __future__ import annotations

import math

import pytest
import torch

from gan.data.toy2d import Toy2DDataModule, sample_mixture
from gan.metrics import MetricSuite
from gan.metrics.modes import effective_count, high_quality_ceiling, kl_to_uniform, mode_coverage, nearest_modes, stacked_modes

N = 2500  # PacGAN's protocol


@pytest.mark.parametrize("layout, num_modes", [("ring", 8), ("grid", 25)])
def test_true_toy_samples_cover_every_mode_at_the_analytic_quality(layout, num_modes):
    std = {"ring": 0.01, "grid": 0.05}[layout]
    data = Toy2DDataModule(layout=layout, std=std)
    samples, _ = sample_mixture(data.modes, data.std, N, torch.Generator().manual_seed(0))
    out = mode_coverage(samples, data.modes, data.std)
    assert out["modes"] == num_modes
    # fraction within 3 std of a 2D Gaussian's mean is 1 - e^-4.5 = 0.98889; binomial sd over 2,500 samples
    # is 0.0021, so 4 sd (0.0084) bounds the sampling error
    ceiling = high_quality_ceiling(3.0)
    assert ceiling == pytest.approx(1 - math.exp(-4.5))
    assert abs(out["high_quality"] - ceiling) < 4 * math.sqrt(ceiling * (1 - ceiling) / N)
    # near-uniform histogram: KL to uniform of a multinomial sample is about (K - 1) / (2 n) on average
    assert 0 <= out["reverse_kl"] < 10 * (num_modes - 1) / (2 * N * ceiling)


def test_generator_collapsed_on_one_mode_covers_one():
    data = Toy2DDataModule(layout="grid", std=0.05)
    samples = data.modes[7] + data.std * torch.randn(N, 2, generator=torch.Generator().manual_seed(1))
    out = mode_coverage(samples, data.modes, data.std)
    assert out["modes"] == 1
    assert out["reverse_kl"] == pytest.approx(math.log(25))


def test_samples_far_from_every_mode_are_not_high_quality():
    data = Toy2DDataModule(layout="ring")
    out = mode_coverage(torch.zeros(100, 2), data.modes, data.std)  # the ring's centre is 100 std from all modes
    assert out == {"modes": 0, "high_quality": 0.0, "reverse_kl": out["reverse_kl"]} and math.isnan(out["reverse_kl"])


def test_mode_coverage_through_the_registry_uses_2500_samples():
    data = Toy2DDataModule(layout="ring")

    class TrueMixture:  # a "generator" that samples the real distribution
        def sample(self, n, generator=None):
            return sample_mixture(data.modes, data.std, n, generator)[0]

    values, protocol = MetricSuite(["mode_coverage"], num_samples=10).evaluate_generator(TrueMixture(), data)
    assert values["mode_coverage/modes"] == 8
    assert protocol["metrics"]["mode_coverage"]["num_fake"] == N and protocol["reference"] is None


def test_stacked_modes_counts_and_kl():
    every_mode = torch.cartesian_prod(*[torch.arange(10)] * 3)  # each of the 1,000 triples once
    out = stacked_modes(every_mode.repeat(26, 1))
    assert out == {"modes": 1000.0, "kl": pytest.approx(0.0, abs=1e-12)}
    collapsed = stacked_modes(torch.tensor([[3, 1, 4]]).repeat(26000, 1))
    assert collapsed["modes"] == 1 and collapsed["kl"] == pytest.approx(math.log(1000))
    two = torch.tensor([[0, 0, 1]] * 3 + [[9, 9, 9]])
    assert stacked_modes(two)["kl"] == pytest.approx(kl_to_uniform(torch.bincount(torch.tensor([1] * 3 + [999]), minlength=1000)))
    p = torch.tensor([0.75, 0.25], dtype=torch.float64)
    assert stacked_modes(two)["kl"] == pytest.approx(float((p * (p * 1000).log()).sum()))


def test_stacked_digits_are_read_channel_by_channel(data_dir):
    from gan.data.digits import load_digits_array
    from gan.metrics.digit_classifier import split
    from gan.metrics.features import DigitPerChannel

    _, (images, labels) = split(*load_digits_array(data_dir))
    order = torch.Generator().manual_seed(0)
    triples = torch.stack([torch.randperm(len(images), generator=order)[:300] for _ in range(3)], dim=1)
    stacked = images[triples].squeeze(2)  # (300, 3, 28, 28): one held-out digit per channel
    read = DigitPerChannel()(stacked)["digits"]
    per_channel_accuracy = (read == labels[triples]).float().mean(0)
    assert read.shape == (300, 3) and bool((per_channel_accuracy > 0.93).all())
    upsampled = DigitPerChannel()(torch.nn.functional.interpolate(stacked, size=32, mode="bilinear"))["digits"]
    assert (upsampled == labels[triples]).float().mean() > 0.9  # 32x32 Stacked MNIST is read too


def test_effective_count_is_the_exponential_of_the_histograms_entropy():
    assert effective_count(torch.tensor([5, 5, 5, 5])) == pytest.approx(4.0)  # k equal bins: k
    assert effective_count(torch.tensor([0, 7, 0])) == pytest.approx(1.0)
    assert effective_count(torch.tensor([0, 0])) == 0.0  # no samples
    counts = torch.tensor([90, 10, 0])
    p = [0.9, 0.1]
    assert effective_count(counts) == pytest.approx(math.exp(-sum(q * math.log(q) for q in p)))
    # a few stray samples add little, where a count of occupied bins would count each as a mode
    assert effective_count(torch.tensor([500, 500] + [1] * 10)) < 2.2


def test_nearest_modes_agree_with_a_brute_force_search():
    generator = torch.Generator().manual_seed(0)
    modes, samples = torch.randn(7, 2, generator=generator), 3 * torch.randn(200, 2, generator=generator)
    distance, index = nearest_modes(samples, modes)
    brute = [min(range(7), key=lambda k: float(((s.double() - modes[k].double()) ** 2).sum())) for s in samples]
    assert index.tolist() == brute
    assert torch.allclose(distance, (samples.double() - modes.double()[index]).norm(dim=1))
