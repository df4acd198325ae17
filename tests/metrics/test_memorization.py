"""The memorization metric: authenticity (Alaa et al. 2022) of fakes and of left-out reals, the median distance
ratio and the rank-sum z-score (Meehan et al. 2020), checked against a brute-force loop, scipy, and generators that
copy training digits or draw digits the training set does not hold."""
from __future__ import annotations

import math

import pytest
import torch

from gan.metrics import MetricSuite
from gan.metrics.functional import memorization, rank_sum_z
from tests.metrics.conftest import TensorData


def brute_force(fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """The definitions, one sample at a time."""
    fake, real = fake.double(), real.double()

    def nearest(point, candidates):  # (distance, index into real) over the candidate indices
        return min((float((point - real[j]).norm()), j) for j in candidates)

    everyone = range(len(real))
    authentic, fake_distances = [], []
    for point in fake:
        distance, r = nearest(point, everyone)
        own, _ = nearest(real[r], [j for j in everyone if j != r])
        authentic.append(distance > own)
        fake_distances.append(distance)
    authentic_data, real_distances = [], []
    for i in everyone:  # real i left out
        rest = [j for j in everyone if j != i]
        distance, r = nearest(real[i], rest)
        own, _ = nearest(real[r], [j for j in rest if j != r])
        authentic_data.append(distance > own)
        real_distances.append(distance)
    median = lambda values: float(torch.tensor(values).median())  # torch's median: the lower middle value
    return {"authenticity": sum(authentic) / len(fake), "authenticity_data": sum(authentic_data) / len(real),
            "distance_ratio": median(fake_distances) / median(real_distances),
            "copy_z": rank_sum_z(torch.tensor(fake_distances), torch.tensor(real_distances))}


def test_memorization_equals_its_definitions_one_sample_at_a_time():
    generator = torch.Generator().manual_seed(3)
    real = torch.randn(40, 5, generator=generator)
    real[7] = real[3]  # a duplicate in the training data: each is the other's nearest, at 0
    fake = torch.cat([torch.randn(25, 5, generator=generator), real[:5] + 1e-3])  # five near-copies
    values = memorization(fake, real)
    expected = brute_force(fake, real)
    assert values == pytest.approx(expected, rel=1e-6)  # torch's cdist takes the matrix-product form (~1e-8 relative)
    assert values["authenticity"] <= 25 / 30  # the near-copies are not authentic


def test_rank_sum_z_is_the_mann_whitney_u_as_a_z_score():
    from scipy.stats import mannwhitneyu

    generator = torch.Generator().manual_seed(0)
    sample, reference = torch.rand(50, generator=generator), torch.rand(70, generator=generator) + 0.1
    u = mannwhitneyu(sample.numpy(), reference.numpy()).statistic  # the U of the first sample
    assert rank_sum_z(sample, reference) == pytest.approx((u - 50 * 70 / 2) / math.sqrt(50 * 70 * 121 / 12), rel=1e-12)
    assert rank_sum_z(sample, reference) < 0  # smaller values: negative


def test_copies_are_never_authentic_and_new_draws_score_as_the_data_does():
    generator = torch.Generator().manual_seed(1)
    real = torch.randn(3000, 8, generator=generator)
    copies = memorization(real[torch.randint(3000, (1000,), generator=generator)], real)
    assert copies["authenticity"] == 0 and copies["distance_ratio"] == 0 and copies["copy_z"] < -10
    new = memorization(torch.randn(3000, 8, generator=generator), real)
    spread = math.sqrt(0.25 / 3000)  # a fraction's standard error, at most
    assert abs(new["authenticity"] - new["authenticity_data"]) < 4 * 2 * spread
    assert abs(new["distance_ratio"] - 1) < 0.1 and abs(new["copy_z"]) < 4
    far = memorization(3 * torch.randn(3000, 8, generator=generator), real)  # off the data: farther, not copies
    assert far["authenticity"] > 0.95 and far["distance_ratio"] > 2 and far["copy_z"] > 10


class Draws:
    """An unconditional 'generator' returning the rows of ``images`` it draws."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def sample(self, n, generator=None, labels=None):
        return self.images[torch.randint(len(self.images), (n,), generator=generator)]


@pytest.fixture(scope="module")
def split_digits(data_dir):
    from gan.data.digits import load_digits_array
    from gan.metrics.digit_classifier import split

    (train_images, _), (held_images, _) = split(*load_digits_array(data_dir))
    return train_images, held_images


def test_a_copy_of_a_duplicated_training_sample_is_not_authentic():
    """A training set with an exact duplicate gives that sample a nearest-neighbour radius of 0; a fake copying it is
    at distance 0 too, and must still count as a copy (0 > 0 is false; ">=" made it authentic: a mutation)."""
    torch.manual_seed(0)
    real = torch.randn(20, 4)
    real = torch.cat([real, real[:1]])  # sample 0 twice
    fake = torch.cat([real[:1], torch.randn(9, 4) + 100.0])  # the duplicate's copy and nine far from every real
    assert memorization(fake, real)["authenticity"] == pytest.approx(9 / 10)


def test_a_generator_copying_its_training_digits_is_told_from_one_drawing_new_digits(split_digits, caplog):
    """On the digit classifier's features: copies of the training digits against digits the training set lacks."""
    train_images, held_images = split_digits
    training = TensorData(train_images, "mnist")
    suite = MetricSuite({"memorization": {"extractor": "digit_classifier"}}, num_samples=len(held_images),
                        num_real=len(train_images))
    copying, protocol = suite.evaluate_generator(Draws(train_images), training)
    assert copying["memorization/authenticity"] == 0 and copying["memorization/distance_ratio"] == 0
    assert copying["memorization/copy_z"] < -10
    assert protocol["metrics"]["memorization"]["num_real"] == len(train_images)
    drawing, _ = suite.evaluate_generator(Draws(held_images), training)
    # digits from the same hand-written set the training digits are not: as a new draw from the data would be
    assert abs(drawing["memorization/authenticity"] - drawing["memorization/authenticity_data"]) < 0.08
    assert 0.8 < drawing["memorization/distance_ratio"] < 1.25
    assert copying["memorization/authenticity_data"] == drawing["memorization/authenticity_data"]  # the reals' own
    assert not [r for r in caplog.records if "training samples" in r.getMessage()]
    part = MetricSuite({"memorization": {"extractor": "digit_classifier"}}, num_samples=100, num_real=1000)
    with caplog.at_level("WARNING", logger="gan"):
        part.evaluate_generator(Draws(train_images), training)
    assert [r.getMessage() for r in caplog.records if "training samples" in r.getMessage()] == [
        f"memorization: the fakes are compared with 1000 of the {len(train_images)} training samples; a copy of one of "
        f"the others is not seen (metrics.num_real={len(train_images)} compares them all)"]


def test_memorization_is_a_registered_metric_with_its_config(make_cfg):
    from gan.metrics.registry import logged_directions

    assert logged_directions(["memorization"]) == {"val/memorization/authenticity": True}
    cfg = make_cfg(["metrics=[fid_digits,memorization]", "metrics.compute.memorization.extractor=digit_classifier"])
    assert dict(cfg.metrics.compute.memorization) == {"extractor": "digit_classifier"}
    assert MetricSuite(dict(cfg.metrics.compute)).metrics[1].name == "memorization"
