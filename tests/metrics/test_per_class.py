"""Per-class metrics of class-conditional generators: the digit classifier's accuracy on sample(labels=c)
(chance for a generator that ignores its labels) and FID within each class; and the checks that keep them
(and fid_digits) off data and models they do not fit."""
from __future__ import annotations

import math

import pytest
import torch

from gan.metrics import MetricSuite
from gan.metrics.functional import frechet_distance_of_features
from tests.metrics.conftest import TensorData

NUM_SAMPLES = 1000


class HeldOutDigits:
    """A class-conditional 'generator' returning real held-out digits: of the requested class, or (ignoring
    its labels) of any class."""

    num_classes = 10

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, follows_labels: bool):
        self.images, self.labels, self.follows_labels = images, labels, follows_labels

    def sample(self, n, generator=None, labels=None):
        if not self.follows_labels:
            return self.images[torch.randint(len(self.images), (n,), generator=generator)]
        picks = []
        for label in labels.tolist():
            of_class = (self.labels == label).nonzero().squeeze(1)
            picks.append(of_class[torch.randint(len(of_class), (1,), generator=generator)])
        return self.images[torch.cat(picks)]


@pytest.fixture(scope="module")
def held_out(data_dir):
    from gan.data.digits import load_digits_array
    from gan.metrics.digit_classifier import split

    _, (images, labels) = split(*load_digits_array(data_dir))  # digits the classifier never trained on
    return images, labels


@pytest.fixture(scope="module")
def digits(data_dir):
    from gan.data.digits import DigitsDataModule

    data = DigitsDataModule(root=str(data_dir))
    data.setup("fit")
    return data


def test_class_accuracy_of_a_generator_that_ignores_its_labels_is_chance(held_out, digits):
    suite = MetricSuite(["class_accuracy"], num_samples=NUM_SAMPLES)
    ignoring, _ = suite.evaluate_generator(HeldOutDigits(*held_out, follows_labels=False), digits)
    # labels i mod 10 are balanced and independent of the images: P(read == label) = 1/10 whatever the classifier
    assert abs(ignoring["class_accuracy"] - 0.1) < 4 * math.sqrt(0.1 * 0.9 / NUM_SAMPLES)
    following, protocol = suite.evaluate_generator(HeldOutDigits(*held_out, follows_labels=True), digits)
    assert following["class_accuracy"] > 0.95  # the classifier's held-out accuracy is 97 %
    assert all(following[f"class_accuracy/{c}"] > 0.85 for c in range(10))
    assert protocol["class_labels"] == "sample i has class i mod 10" and protocol["reference"] is None


def test_intra_fid_is_the_frechet_distance_within_each_class(held_out, digits):
    suite = MetricSuite({"intra_fid": {"extractor": "digit_classifier"}}, num_samples=NUM_SAMPLES, num_real=1000)
    values, protocol = suite.evaluate_generator(HeldOutDigits(*held_out, follows_labels=True), digits)
    extractor = suite.extractors["digit_classifier"]
    generator = HeldOutDigits(*held_out, follows_labels=True)
    from gan.metrics.registry import real_sample_indices
    from gan.metrics.sharding import Batches, batch_seed

    batches = Batches(NUM_SAMPLES, suite.batch_size)  # the suite's draw: batch b from its own seed, labels i mod 10
    fake_labels = torch.arange(NUM_SAMPLES) % 10
    fakes = torch.cat([generator.sample(batches.size(b), torch.Generator().manual_seed(batch_seed(0, b)),
                                        fake_labels[batches.start(b):batches.start(b) + batches.size(b)]) for b in range(len(batches))])
    indices = real_sample_indices(digits, 1000, 0)
    reals, real_labels = digits.train_set.tensors[0][indices], digits.train_set.tensors[1][indices]
    fake_features, real_features = extractor(fakes)["features"], extractor(reals)["features"]
    for c in (0, 3, 9):
        expected = frechet_distance_of_features(fake_features[fake_labels == c], real_features[real_labels == c])
        assert values[f"intra_fid/{c}"] == pytest.approx(expected, rel=1e-6)
    assert values["intra_fid"] == pytest.approx(sum(values[f"intra_fid/{c}"] for c in range(10)) / 10)
    ignoring, _ = suite.evaluate_generator(HeldOutDigits(*held_out, follows_labels=False), digits)
    assert ignoring["intra_fid"] > 5 * values["intra_fid"]  # a class's fakes are all digits: far from that class


def test_intra_fid_says_once_when_a_class_has_fewer_samples_than_dimensions(held_out, digits, caplog):
    """300 reals give ~30 per class against the digit classifier's 64 feature dimensions: singular covariances."""
    from gan.metrics.registry import real_sample_indices

    generator = HeldOutDigits(*held_out, follows_labels=True)
    enough = MetricSuite({"intra_fid": {"extractor": "digit_classifier"}}, num_samples=NUM_SAMPLES, num_real=1000)
    with caplog.at_level("WARNING", logger="gan"):
        enough.evaluate_generator(generator, digits)
    assert not [r for r in caplog.records if "feature dimensions" in r.getMessage()]
    few = MetricSuite({"intra_fid": {"extractor": "digit_classifier"}}, num_samples=NUM_SAMPLES, num_real=300)
    with caplog.at_level("WARNING", logger="gan"):
        few.evaluate_generator(generator, digits)
        few.evaluate_generator(generator, digits)  # said once per metric, not at every evaluation
    said = [r.getMessage() for r in caplog.records if "feature dimensions" in r.getMessage()]
    real_counts = torch.bincount(digits.train_set.tensors[1][real_sample_indices(digits, 300, 0)], minlength=10)
    assert said == [f"intra_fid: the smallest class has {int(real_counts.min())} real and {NUM_SAMPLES // 10} fake samples, "
                    "not more than the 64 feature dimensions: its covariance is singular and its distance biased upward; "
                    "compare intra_fid only at equal counts (metrics.num_real, metrics.num_samples)"]


@pytest.mark.parametrize("fewest, said", [(64, True), (65, False)])
def test_a_class_with_as_many_samples_as_dimensions_is_said_to_have_a_singular_covariance(caplog, fewest, said):
    # n samples span at most n - 1 dimensions around their mean: n = d is singular too (a mutation of "<=" to "<")
    metric = MetricSuite({"intra_fid": {"extractor": "digit_classifier"}}, with_extractors=False).metrics[0]
    with caplog.at_level("WARNING", logger="gan"):
        metric.warn_about_few_samples([(500, 500), (fewest, 500)], 64)
    assert bool([r for r in caplog.records if "covariance is singular" in r.getMessage()]) == said


def test_per_class_and_digit_metrics_refuse_what_they_cannot_score(digits):
    with pytest.raises(ValueError, match=r"class_accuracy scores each class of a class-conditional generator, but this one is unconditional"):
        MetricSuite(["class_accuracy"]).check_generator(None)
    with pytest.raises(ValueError, match=r"intra_fid needs at least 2 fakes per class: 10 samples for 10 classes"):
        MetricSuite({"intra_fid": {"extractor": "digit_classifier"}}, num_samples=10).check_generator(10)
    # 5 fakes for 10 classes: classes 5-9 were NaN and the overall accuracy that of classes 0-4 (an audit)
    with pytest.raises(ValueError, match=r"class_accuracy needs at least one fake per class: 5 samples for 10 classes"):
        MetricSuite(["class_accuracy"], num_samples=5).check_generator(10)
    MetricSuite(["class_accuracy"], num_samples=10).check_generator(10)
    for metric in ("fid_digits", "class_accuracy"):  # 1x28x28 but not digits
        with pytest.raises(ValueError, match=fr"{metric} .* needs digit data \(data=digits or data=mnist\), not fashion_mnist"):
            MetricSuite([metric]).check_data(TensorData(torch.zeros(4, 1, 28, 28), "fashion_mnist"))
    with pytest.raises(ValueError, match=r"fid_digits .* not cifar10"):
        MetricSuite(["fid_digits"]).check_data(TensorData(torch.zeros(4, 3, 32, 32), "cifar10"))
    with pytest.raises(ValueError, match=r"stacked_modes .* needs data=stacked_mnist, but data cifar10"):
        MetricSuite(["stacked_modes"]).check_data(TensorData(torch.zeros(4, 3, 28, 28), "cifar10"))
    with pytest.raises(ValueError, match=r"intra_fid .* data tensor_data is unlabelled"):
        MetricSuite({"intra_fid": {"extractor": "digit_classifier"}}).check_data(TensorData(torch.zeros(4, 1, 28, 28)))
    MetricSuite(["fid_digits", "class_accuracy"]).check_data(digits)
    MetricSuite(["class_accuracy"]).check_generator(10)
