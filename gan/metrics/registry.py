"""The metric registry shared by the training callback and evaluate.py.

``METRICS`` maps a name to a small class that turns features into numbers; ``MetricSuite`` runs a selection
of them: it draws the fake samples once (under DDP each rank draws and extracts its share), runs each
feature extractor once over them, reads the real features from the on-disk cache, computes every metric
once, and returns the values together with the protocol (extractor, weights, resize, sample counts,
reference split, seeds) that produced them.
"""
from __future__ import annotations

import copy
import logging
import math
import numbers
import re
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from gan.data.base import sample_indices
from gan.metrics.cache import cache_key, data_content, feature_code, load_cached_features, reference_split, store_features
from gan.metrics.features import DISTANCE_EXTRACTORS, EXTRACTORS, RESIZE_MODES, check_resize
from gan.metrics.functional import (at_infinity, density_coverage, frechet_distance, frechet_distance_of_features,
                                    gaussian_statistics, memorization, nested_counts, psd_factor)
from gan.metrics.modes import mode_coverage, stacked_modes
from gan.metrics.sharding import Batches, batch_seed, broadcast_from_rank_zero, gather_to_rank_zero
from gan.utils.config import MAX_METRIC_SAMPLES
from gan.utils.distributed import rank_and_world_size
from gan.utils.errors import ConfigError, DataError
from gan.utils.option_types import check_options
from gan.utils.targets import class_path

log = logging.getLogger("gan")

LABELS = "labels"  # the class labels stored beside an extractor's feature layers (labelled data only)


def holds_digits(datamodule) -> bool:
    """MNIST digits: the embedded 5,000 or MNIST itself (not Fashion-MNIST, which shares MNIST's loader)."""
    from gan.data import DigitsDataModule

    return isinstance(datamodule, DigitsDataModule) or datamodule.name == "mnist"


class Metric:
    """One metric: which extractor it reads, how many fake samples it takes, how to score features."""

    name: ClassVar[str]
    #: the extractor (a key of ``features.EXTRACTORS``) read unless the ``extractor`` option picks another
    extractor: ClassVar[str]
    #: other extractors the ``extractor`` option accepts
    extractor_choices: ClassVar[tuple[str, ...]] = ()
    #: the values a checkpoint can monitor -> whether larger is better; the first is the headline
    directions: ClassVar[dict[str, bool]]
    needs_real: ClassVar[bool] = True
    #: scores each class of a class-conditional generator (the fakes' labels are read)
    needs_labels: ClassVar[bool] = False
    #: compares as many reals as fakes (k-NN metrics depend on the ratio; Kynkaanniemi et al. use equal counts)
    equal_counts: ClassVar[bool] = False

    #: whether its headline can be a best checkpoint's default monitor (not a diagnostic whose "better" direction
    #: also rewards a broken generator: memorization's authenticity is highest far from the data)
    selects_checkpoints: ClassVar[bool] = True

    @classmethod
    def headline(cls) -> str:
        return next(iter(cls.directions))

    def warn_once(self, message: str, *args: Any) -> None:
        """``log.warning(message, *args)`` the first time this metric says ``message``: a metric is scored at every
        evaluation of a run, and a caveat about its counts holds for all of them."""
        said = self.__dict__.setdefault("_said", set())
        if message not in said:
            said.add(message)
            log.warning(message, *args)

    def __init__(self, num_samples: int | None = None, extractor: str | None = None):
        #: fake samples this metric takes; None: the suite's ``num_samples``
        if num_samples is not None and not 1 <= int(num_samples) <= MAX_METRIC_SAMPLES:  # 0 fell back to the suite's count silently
            raise ConfigError(f"metrics.compute.{self.name}.num_samples={num_samples}: expected an integer from 1 to "
                              f"{MAX_METRIC_SAMPLES:,}, or null (the suite's metrics.num_samples)")
        self.num_samples = None if num_samples is None else int(num_samples)
        allowed = (type(self).extractor, *self.extractor_choices)
        if extractor is not None and extractor not in allowed:
            raise ConfigError(f"metrics.compute.{self.name}.extractor={extractor!r}; expected one of {list(dict.fromkeys(allowed))}")
        self.extractor_name = extractor or type(self).extractor

    @property
    def layer(self) -> str:
        """The feature layer distance metrics read (the extractor's ``distance_layer``)."""
        return EXTRACTORS[self.extractor_name].distance_layer

    @property
    def min_samples(self) -> int:
        """The fewest fakes (and reals, when it reads them) the metric is defined on."""
        return 1

    @property
    def min_samples_option(self) -> tuple[str, int] | None:
        """The option that sets :attr:`min_samples` and its value, when one does."""
        return None

    def too_few(self, option: str, count: int) -> str:
        """Why ``option=count`` samples are too few, naming the option that asks for more where one does (a k of
        1e12 blamed metrics.num_samples alone, an audit)."""
        if self.min_samples_option is None:
            return f"{option}={count}: {self.name} needs at least {self.min_samples} samples"
        key, value = self.min_samples_option
        return (f"{option}={count}: {self.name} with {key}={value} needs at least {self.min_samples} samples; expected "
                f"more samples or a smaller {key}")

    def options(self, num_fake: int, num_real: int | None = None) -> dict[str, Any]:
        """The metric's settings for the protocol (``num_fake``, ``num_real``: the samples it scores; the reals
        None when it reads none, or when only the fakes' count is known)."""
        return {}

    def check_data(self, datamodule) -> None:
        if getattr(datamodule, "kind", "image") != "image":
            raise ConfigError(f"metric {self.name} scores images, but data {datamodule.name} yields {getattr(datamodule, 'kind', '?')}")

    def check_generator(self, num_classes: int | None, num_fake: int) -> None:
        if self.needs_labels and num_classes is None:
            raise ConfigError(f"metric {self.name} scores each class of a class-conditional generator, but this one is "
                              f"unconditional; use a conditional model (e.g. model=cgan) or drop {self.name}")

    def compute(self, fake: dict[str, Tensor], real: dict[str, Tensor] | None, datamodule) -> dict[str, float]:
        raise NotImplementedError


def check_digit_data(metric: Metric, datamodule) -> None:
    """The digit classifier's features mean something only on MNIST digits."""
    if not holds_digits(datamodule):
        raise ConfigError(f"{metric.name} reads images with the shipped MNIST digit classifier, so it needs digit data "
                          f"(data=digits or data=mnist), not {datamodule.name}")
    if datamodule.sample_shape[0] not in (1, 3):
        raise ConfigError(f"{metric.name} needs gray digit images (1 or 3 equal channels), but data {datamodule.name} "
                          f"yields {list(datamodule.sample_shape)}")


# ----------------------------------------------------------------------------------- distance metrics
class FID(Metric):
    """Frechet Inception Distance (Heusel et al. 2017): torch-fidelity's statistics, the Frechet distance
    computed with eigenvalues (``functional.frechet_distance``; equal to torch-fidelity's sqrtm value)."""

    name, extractor = "fid", "inception"
    directions = {"fid": False}
    min_samples = 2  # a covariance needs two feature vectors

    def compute(self, fake, real, datamodule):
        return {self.name: frechet_distance_of_features(fake[self.layer], real[self.layer])}


class FIDDigits(FID):
    """FID in the feature space of the shipped digit classifier: comparable across runs of this project
    on digit data, NOT with Inception FIDs in papers."""

    name, extractor = "fid_digits", "digit_classifier"
    directions = {"fid_digits": False}

    def check_data(self, datamodule):
        super().check_data(datamodule)
        check_digit_data(self, datamodule)


class FDDinoV2(FID):
    """FD_DINOv2 (Stein et al. 2023): the Frechet distance on DINOv2 CLS features (ViT-L/14 by default)."""

    name, extractor = "fd_dinov2", "dinov2"
    directions = {"fd_dinov2": False}


class FDCLIP(FID):
    """The Frechet distance on CLIP image embeddings (Kynkaanniemi et al. 2023's FD_CLIP)."""

    name, extractor = "fd_clip", "clip"
    directions = {"fd_clip": False}


class AtInfinity(Metric):
    """Chong & Forsyth (2020)'s extrapolation: a score of random subsets of the fakes at several sizes N, a
    least-squares line in 1/N, its intercept (the score at N = infinity). One set of features serves every N."""

    def __init__(self, num_samples: int | None = None, extractor: str | None = None, num_points: int = 15,
                 smallest_fraction: float = 0.1, counts: Sequence[int] | None = None, seed: int = 2020):
        super().__init__(num_samples, extractor)
        if not 0 < float(smallest_fraction) <= 1 or int(num_points) < 2:
            raise ConfigError(f"metrics.compute.{self.name}: num_points={num_points} must be >= 2 and "
                              f"smallest_fraction={smallest_fraction} in (0, 1]")
        self.num_points, self.smallest_fraction, self.seed = int(num_points), float(smallest_fraction), int(seed)
        self.counts = None if counts is None else sorted({int(c) for c in counts})

    def counts_for(self, num_fake: int) -> list[int]:
        """The sample counts N: ``counts`` if given, else ``num_points`` from ``smallest_fraction`` of the fakes
        to all of them (Chong & Forsyth: 5,000..50,000 in 15 steps)."""
        counts = self.counts or nested_counts(num_fake, self.num_points, self.smallest_fraction)
        if len(counts) < 2 or counts[0] < 2 or counts[-1] > num_fake:
            raise ConfigError(f"metrics.compute.{self.name}: sample counts {counts} need at least two distinct values "
                              f"between 2 and the {num_fake} fakes scored")
        return counts

    def options(self, num_fake, num_real=None):
        return {"counts": self.counts_for(num_fake), "fit": "least squares value = a + b / N, reported a",
                "subset_seed": self.seed}

    def scorer(self, real: dict[str, Tensor] | None) -> Callable[[Tensor], float]:
        """The score of one subset of the fake features."""
        raise NotImplementedError

    def compute(self, fake, real, datamodule):
        features = fake[self.layer]
        value, _ = at_infinity(features, self.counts_for(len(features)), self.scorer(real), self.seed)
        return {self.name: value}


class FIDInfinity(AtInfinity):
    """FID-infinity: FID extrapolated to infinitely many fakes (the reals' statistics stay fixed)."""

    name, extractor, extractor_choices = "fid_inf", "inception", DISTANCE_EXTRACTORS
    directions = {"fid_inf": False}

    def scorer(self, real):
        mu_real, sigma_real = gaussian_statistics(real[self.layer])
        factor = psd_factor(sigma_real)  # once for all N
        return lambda fake: frechet_distance(*gaussian_statistics(fake), mu_real, sigma_real, factor)


class IntraFID(Metric):
    """FID within each class of a class-conditional generator (Miyato & Koyama 2018's intra-FID): the fakes
    drawn with label c against the reals of class c; ``intra_fid`` is the mean over classes."""

    name, extractor, extractor_choices, needs_labels = "intra_fid", "inception", DISTANCE_EXTRACTORS, True
    directions = {"intra_fid": False}

    def check_data(self, datamodule):
        super().check_data(datamodule)
        if datamodule.num_classes is None:
            raise ConfigError(f"{self.name} compares each class with the real images of that class, but data "
                              f"{datamodule.name} is unlabelled")

    def check_generator(self, num_classes, num_fake):
        super().check_generator(num_classes, num_fake)
        if num_fake < 2 * num_classes:
            raise ConfigError(f"{self.name} needs at least 2 fakes per class: {num_fake} samples for {num_classes} classes")

    def compute(self, fake, real, datamodule):
        values, counts = {}, []
        for label in range(datamodule.num_classes):
            fakes, reals = fake[self.layer][fake[LABELS] == label], real[self.layer][real[LABELS] == label]
            if len(reals) < 2:
                raise ConfigError(f"{self.name}: class {label} has {len(reals)} of the real samples; raise metrics.num_real")
            values[f"{self.name}/{label}"] = frechet_distance_of_features(fakes, reals)
            counts.append((len(reals), len(fakes)))
        self.warn_about_few_samples(counts, fake[self.layer].shape[1])
        return {self.name: sum(values.values()) / len(values), **values}

    def warn_about_few_samples(self, counts: list[tuple[int, int]], dimensions: int) -> None:
        """Once per metric object (:meth:`warn_once`): a class with no more samples than the features have dimensions
        has a singular covariance, and its Frechet distance is biased upward, the more so the fewer the samples (10
        reals of a class against the digit classifier's 64 dimensions passed without a word; an audit). The value is
        still a valid comparison between runs at the same counts."""
        fewest_real, fewest_fake = min(real for real, _ in counts), min(fake for _, fake in counts)
        if min(fewest_real, fewest_fake) <= dimensions:
            self.warn_once("%s: the smallest class has %d real and %d fake samples, not more than the %d feature "
                           "dimensions: its covariance is singular and its distance biased upward; compare %s only at "
                           "equal counts (metrics.num_real, metrics.num_samples)", self.name, fewest_real, fewest_fake,
                           dimensions, self.name)


class KID(Metric):
    """Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel,
    averaged over random subsets (torch-fidelity's estimator). Subsets shrink to the sample count."""

    name, extractor, extractor_choices = "kid", "inception", DISTANCE_EXTRACTORS
    directions = {"kid": False}
    min_samples = 2  # the unbiased MMD^2 averages over pairs: one sample gives NaN, and no error

    def __init__(self, num_samples: int | None = None, extractor: str | None = None, subsets: int = 100,
                 subset_size: int = 1000, seed: int = 2020):
        super().__init__(num_samples, extractor)
        self.subsets, self.subset_size, self.seed = int(subsets), int(subset_size), int(seed)
        # 0 gave NaN with status 0, a negative value a traceback (an audit)
        if self.subsets < 1:
            raise ConfigError(f"metrics.compute.kid.subsets={subsets}: expected an integer >= 1 (the random subsets KID "
                              "averages over)")
        if self.subset_size < 2:
            raise ConfigError(f"metrics.compute.kid.subset_size={subset_size}: expected an integer >= 2 (the samples of a "
                              "subset; its unbiased estimate averages over pairs)")

    def options(self, num_fake, num_real=None):
        # the size the subsets have, which compute shrinks to the counts (it recorded the option, not what was used)
        size = min(self.subset_size, num_fake, num_fake if num_real is None else num_real)
        return {"subsets": self.subsets, "subset_size": size, "subset_seed": self.seed, "kernel": "(x.y / d + 1)^3"}

    def compute(self, fake, real, datamodule):
        from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

        fake_features, real_features = fake[self.layer], real[self.layer]
        size = min(self.subset_size, len(fake_features), len(real_features))
        out = kid_features_to_metric(fake_features, real_features, kid_subsets=self.subsets, kid_subset_size=size,
                                     rng_seed=self.seed, verbose=False)
        return {"kid": out[KEY_METRIC_KID_MEAN], "kid_std": out[KEY_METRIC_KID_STD]}


class NearestNeighbourMetric(Metric):
    """A metric on k-nearest-neighbour balls: ``neighborhood`` is k; it compares as many reals as fakes,
    since the balls' reach depends on how many points there are."""

    extractor, extractor_choices, equal_counts = "inception", DISTANCE_EXTRACTORS, True
    default_neighborhood: ClassVar[int]

    def __init__(self, num_samples: int | None = None, extractor: str | None = None, neighborhood: int | None = None):
        super().__init__(num_samples, extractor)
        # None: the metric's own k; 0 was taken for None (an audit), a negative k failed inside torch
        self.neighborhood = self.default_neighborhood if neighborhood is None else int(neighborhood)
        if self.neighborhood < 1:
            raise ConfigError(f"metrics.compute.{self.name}.neighborhood={neighborhood}: expected an integer >= 1 (the k "
                              f"of the k-nearest-neighbour balls) or null for {self.default_neighborhood}")

    @property
    def min_samples(self) -> int:
        return self.neighborhood + 1  # a k-th nearest other point

    @property
    def min_samples_option(self) -> tuple[str, int]:
        return f"metrics.compute.{self.name}.neighborhood", self.neighborhood

    def options(self, num_fake, num_real=None):
        return {"neighborhood": self.neighborhood}

    def compute(self, fake, real, datamodule):
        fake_features, real_features = fake[self.layer], real[self.layer]
        if not bool(torch.isfinite(fake_features).all() and torch.isfinite(real_features).all()):
            # a diverged generator: no distance to count (NaN compares false, which gave 0/0 for the counts)
            return {name: math.nan for name in self.directions}
        return self.score(fake_features, real_features)

    def score(self, fake: Tensor, real: Tensor) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError


class PrecisionRecall(NearestNeighbourMetric):
    """Improved precision and recall (Kynkaanniemi et al. 2019): k = 3 balls around real and fake features."""

    name, default_neighborhood = "prc", 3
    directions = {"prc/f_score": True, "prc/precision": True, "prc/recall": True}

    def score(self, fake, real):
        from torch_fidelity.metric_prc import prc_features_to_metric

        out = prc_features_to_metric(fake, real, prc_neighborhood=self.neighborhood, verbose=False)
        return {f"prc/{key}": value for key, value in out.items()}


class DensityCoverage(NearestNeighbourMetric):
    """Density and coverage (Naeem et al. 2020), the outlier-robust successors of precision and recall:
    k = 5 balls around the reals only."""

    name, default_neighborhood = "density_coverage", 5
    directions = {"density_coverage/coverage": True, "density_coverage/density": True}

    def score(self, fake, real):
        out = density_coverage(fake, real, self.neighborhood)
        return {f"{self.name}/{key}": value for key, value in out.items()}


class Memorization(Metric):
    """Do the fakes copy training samples? :func:`~gan.metrics.functional.memorization` on the extractor's features,
    against the metrics' real samples, which are the reference the fakes could have copied: a copy of a training
    sample outside them is not seen (said once when they are fewer than the train split)."""

    name, extractor, extractor_choices = "memorization", "inception", DISTANCE_EXTRACTORS
    directions = {"memorization/authenticity": True}
    selects_checkpoints = False  # a diagnostic: set metrics.monitor to follow it on purpose
    min_samples = 3  # each real's two nearest others

    def compute(self, fake, real, datamodule):
        fake_features, real_features = fake[self.layer], real[self.layer]
        keys = ("authenticity", "authenticity_data", "distance_ratio", "copy_z")
        if not bool(torch.isfinite(fake_features).all()):  # a diverged generator: no distance to compare
            return {f"{self.name}/{key}": math.nan for key in keys}
        split = len(datamodule.train_set) if getattr(datamodule, "train_set", None) is not None else None
        if split is not None and len(real_features) < split:
            self.warn_once("%s: the fakes are compared with %d of the %d training samples; a copy of one of the others "
                           "is not seen (metrics.num_real=%d compares them all)", self.name, len(real_features), split,
                           split)
        return {f"{self.name}/{key}": value for key, value in memorization(fake_features, real_features).items()}


# ---------------------------------------------------------------------------------- classifier scores
class InceptionScore(Metric):
    """Inception Score (Salimans et al. 2016) on torch-fidelity's unbiased logits; needs no real data."""

    name, extractor, needs_real = "is", "inception", False
    directions = {"is": True}

    def __init__(self, num_samples: int | None = None, splits: int = 10, seed: int = 2020):
        super().__init__(num_samples)
        self.splits, self.seed = int(splits), int(seed)

    @property
    def min_samples(self) -> int:
        return self.splits  # every split needs a sample

    @property
    def min_samples_option(self) -> tuple[str, int]:
        return f"metrics.compute.{self.name}.splits", self.splits

    def options(self, num_fake, num_real=None):
        return {"splits": self.splits, "shuffle_seed": self.seed}

    def compute(self, fake, real, datamodule):
        from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

        out = isc_features_to_metric(fake["logits_unbiased"], splits=self.splits, shuffle=True, rng_seed=self.seed)
        return {"is": out[KEY_METRIC_ISC_MEAN], "is_std": out[KEY_METRIC_ISC_STD]}


class ISInfinity(AtInfinity):
    """IS-infinity: the Inception Score (one split, as Chong & Forsyth compute it) extrapolated to N = infinity."""

    name, extractor, extractor_choices, needs_real = "is_inf", "inception", ("digit_classifier",), False
    directions = {"is_inf": True}

    @property
    def layer(self) -> str:
        return EXTRACTORS[self.extractor_name].logits_layer

    def options(self, num_fake, num_real=None):
        return {**super().options(num_fake, num_real), "splits": 1}

    def scorer(self, real):
        from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, isc_features_to_metric

        return lambda logits: isc_features_to_metric(logits, splits=1, shuffle=False)[KEY_METRIC_ISC_MEAN]


class ClassAccuracy(Metric):
    """Does ``sample(labels=3)`` give 3s? The shipped digit classifier's accuracy on the fakes of a
    class-conditional digit generator, over all classes (chance: 0.1) and per class."""

    name, extractor, needs_real, needs_labels = "class_accuracy", "digit_classifier", False, True
    directions = {"class_accuracy": True}

    def check_data(self, datamodule):
        super().check_data(datamodule)
        check_digit_data(self, datamodule)

    def check_generator(self, num_classes, num_fake):
        super().check_generator(num_classes, num_fake)
        if num_fake < num_classes:  # the classes without a fake were NaN, and the overall value over the others (an audit)
            raise ConfigError(f"{self.name} needs at least one fake per class: {num_fake} samples for {num_classes} classes")

    def compute(self, fake, real, datamodule):
        correct = fake["logits"].argmax(dim=1) == fake[LABELS]
        per_class = {f"{self.name}/{label}": float(correct[fake[LABELS] == label].double().mean())
                     for label in range(datamodule.num_classes)}
        return {self.name: float(correct.double().mean()), **per_class}


# ------------------------------------------------------------------------------------- mode counting
class ModeCoverage(Metric):
    """PacGAN's 2D mode coverage (Lin et al. 2018): modes captured, high-quality fraction, reverse KL."""

    name, extractor, needs_real = "mode_coverage", "raw", False
    directions = {"mode_coverage/modes": True, "mode_coverage/high_quality": True, "mode_coverage/reverse_kl": False}

    def __init__(self, num_samples: int | None = 2500, std_multiple: float = 3.0):
        super().__init__(num_samples)
        if not float(std_multiple) > 0:  # 0 or less: no sample is ever high quality
            raise ConfigError(f"metrics.compute.mode_coverage.std_multiple must be > 0 (a sample within that many standard "
                              f"deviations of a mode is high quality; 3 in PacGAN), got {std_multiple}")
        self.std_multiple = float(std_multiple)

    def options(self, num_fake, num_real=None):
        return {"high_quality_within_std": self.std_multiple}

    def check_data(self, datamodule):
        if getattr(datamodule, "modes", None) is None or getattr(datamodule, "std", None) is None:
            raise ConfigError(f"mode_coverage needs a 2D Gaussian mixture (data=toy2d_*), got data {datamodule.name}")

    def compute(self, fake, real, datamodule):
        out = mode_coverage(fake["samples"], datamodule.modes, datamodule.std, self.std_multiple)
        return {f"mode_coverage/{key}": value for key, value in out.items()}


class StackedModes(Metric):
    """Stacked MNIST modes (VEEGAN / PacGAN): each channel read by the digit classifier; 1,000 modes."""

    name, extractor, needs_real = "stacked_modes", "digit_classifier_per_channel", False
    directions = {"stacked_modes/modes": True, "stacked_modes/kl": False}

    def __init__(self, num_samples: int | None = 26000):
        super().__init__(num_samples)

    def check_data(self, datamodule):
        super().check_data(datamodule)
        if datamodule.name != "stacked_mnist" or datamodule.sample_shape[0] != 3:
            raise ConfigError(f"stacked_modes reads three stacked MNIST digits per image, so it needs data=stacked_mnist, "
                              f"but data {datamodule.name} yields {list(datamodule.sample_shape)}")

    def compute(self, fake, real, datamodule):
        return {f"stacked_modes/{key}": value for key, value in stacked_modes(fake["digits"]).items()}


METRICS: dict[str, type[Metric]] = {cls.name: cls for cls in (
    FID, FIDDigits, FDDinoV2, FDCLIP, FIDInfinity, IntraFID, KID, PrecisionRecall, DensityCoverage, Memorization,
    InceptionScore, ISInfinity, ClassAccuracy, ModeCoverage, StackedModes)}

#: what a metric's name must look like: it is an option's key (``metrics.compute.<name>``) and a logged name
METRIC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def metric_class_problem(cls: Any) -> str | None:
    """Why ``cls`` cannot be a metric of the registry (what its users read: ``name``, ``directions``, ``extractor``,
    ``compute``), or None."""
    if not (isinstance(cls, type) and issubclass(cls, Metric)):
        return f"it is {'the class' if isinstance(cls, type) else 'a'} {getattr(cls, '__name__', type(cls).__name__)}, " \
               "not a subclass of gan.metrics.Metric"
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not METRIC_NAME.fullmatch(name):
        return f"its name is {name!r}; expected a class attribute name, letters, digits and _ (metrics=[<name>] selects it)"
    directions = getattr(cls, "directions", None)
    if not isinstance(directions, dict) or not directions or not all(
            isinstance(key, str) and key and isinstance(higher, bool) for key, higher in directions.items()):
        return (f"its directions are {directions!r}; expected a class attribute mapping each value compute returns that "
                f"a checkpoint can monitor to whether larger is better, the headline first (e.g. {{{name!r}: False}})")
    extractors = [getattr(cls, "extractor", None), *getattr(cls, "extractor_choices", ())]
    unknown = [extractor for extractor in extractors if extractor not in EXTRACTORS]
    if unknown:
        return f"its extractor {unknown[0]!r} is not a feature extractor; expected one of {sorted(EXTRACTORS)} ('raw': the samples themselves)"
    if cls.compute is Metric.compute:
        return "it defines no compute(fake, real, datamodule); expected one returning a dict of numbers keyed by its directions"
    return None


#: the classes :func:`metric_class` has checked (a class of one's own may be put in METRICS directly)
_CHECKED_CLASSES: set[type] = set()


def register_metric(cls: type[Metric]) -> type[Metric]:
    """Add a metric of one's own to :data:`METRICS` under its ``name`` (``metrics=[<name>]`` then selects it, in
    training and in evaluate.py), after checking what the registry reads from it; usable as a class decorator::

        @register_metric
        class SlicedWasserstein(Metric):
            name, extractor = "sliced_w1", "raw"
            directions = {"sliced_w1": False}
            def compute(self, fake, real, datamodule): return {"sliced_w1": ...}

    The module that defines it must be imported before the options are checked. Registering the same class again
    (its module imported twice) changes nothing; another class under a name already taken is refused."""
    problem = metric_class_problem(cls)
    if problem is not None:
        raise ConfigError(f"register_metric({getattr(cls, '__name__', cls)!r}): {problem}")
    taken = METRICS.get(cls.name)
    if taken is not None and class_path(taken) != class_path(cls):
        raise ConfigError(f"register_metric({cls.__name__}): the metric name {cls.name!r} is taken by "
                          f"{class_path(taken)}; expected a name of its own")
    METRICS[cls.name] = cls
    _CHECKED_CLASSES.add(cls)
    return cls


def metric_class(name: str) -> type[Metric]:
    if name not in METRICS:
        raise ConfigError(f"unknown metric {name!r}; expected one of {sorted(METRICS)} (a metric of one's own is "
                          "registered with gan.metrics.register_metric in a module the run imports: imports=[mypkg.metrics])")
    cls = METRICS[name]
    if cls not in _CHECKED_CLASSES:  # put in METRICS by hand (METRICS["x"] = cls) rather than by register_metric
        problem = metric_class_problem(cls)
        if problem is None and cls.name != name:
            problem = f"its name is {cls.name!r}; expected {name!r}, the name METRICS holds it under (register_metric(cls) files it under its own)"
        if problem is not None:
            raise ConfigError(f"metric {name} ({getattr(cls, '__name__', cls)}): {problem}")
        _CHECKED_CLASSES.add(cls)
    return cls


def checked_values(metric: Metric, values: Any) -> dict[str, float]:
    """What ``metric.compute`` returned, as ``{name: float}``, after checking it holds every value its ``directions``
    declare: an audit's metric of its own returned another key, which was logged as ``val/<key>`` while the best
    checkpoint, which monitors ``val/<first key of directions>``, was never written, without a word. Run where the
    registry scores, so training and evaluate.py both say it."""
    cls, declared = type(metric).__name__, list(metric.directions)
    if not isinstance(values, Mapping):
        raise ConfigError(f"metric {metric.name} ({cls}): compute returned a {type(values).__name__}; expected a dict "
                          f"of numbers with the keys its directions declare, {declared}")
    for key, value in values.items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, numbers.Real):
            kind = f"a tensor of shape {list(value.shape)}" if isinstance(value, Tensor) else f"a {type(value).__name__}"
            raise ConfigError(f"metric {metric.name} ({cls}): compute returned {key!r}: {kind}; expected a dict of "
                              "numbers keyed by name (a tensor's value: float(x))")
    missing = [key for key in declared if key not in values]
    if missing:
        raise ConfigError(f"metric {metric.name} ({cls}): compute returned the keys {list(values)}, but its directions "
                          f"declare {declared}; expected every declared key among them (the best checkpoint monitors "
                          f"val/{declared[0]}), missing {missing}")
    return {key: float(value) for key, value in values.items()}


def logged_directions(names: Sequence[str] | None) -> dict[str, bool]:
    """``val/<key>`` -> whether a larger value is better, for every value the selected metrics ``names`` log
    (what an objective, a checkpoint's monitor or a best checkpoint can follow)."""
    return {f"val/{key}": higher for name in (names or []) for key, higher in metric_class(name).directions.items()}


def _build_metric(name: str, options: Mapping | None) -> Metric:
    cls = metric_class(name)
    if options is not None and not isinstance(options, Mapping):  # ``metrics.compute.fid=abc``: an AttributeError
        raise ConfigError(f"metrics.compute.{name}={options}: expected the metric's options (e.g. "
                          f"metrics.compute.{name}.num_samples=5000) or null for its defaults")
    check_options(options, cls, f"metrics.compute.{name}")
    try:
        return cls(**dict(options or {}))
    except TypeError as error:  # a misspelt option
        raise ConfigError(f"metrics.compute.{name}: {error}") from None


def best_monitor(monitor: str | None, compute: Mapping | Sequence | None) -> tuple[str | None, str]:
    """(logged key, "min"/"max") a best checkpoint follows: ``monitor`` if set, else the headline of the first metric
    that selects checkpoints (``metrics=[memorization,fid]`` follows fid; a review found best.ckpt following the
    highest authenticity, which a generator far from the data has)."""
    names = list(compute or [])
    if monitor is None:
        selecting = [name for name in names if metric_class(name).selects_checkpoints]
        if not selecting:
            return None, "min"
        monitor = metric_class(selecting[0]).headline()
    monitor = str(monitor).removeprefix("val/")  # metrics.monitor=-1 was an AttributeError in a resolver (an audit)
    directions = {key: higher for cls in map(metric_class, names) for key, higher in cls.directions.items()}
    if monitor not in directions:
        raise ConfigError(f"metrics.monitor={monitor!r} is not computed by the selected metrics {names}; expected one of {sorted(directions)}")
    return f"val/{monitor}", "max" if directions[monitor] else "min"


def real_sample_indices(datamodule, n: int, seed: int) -> Tensor:
    """The reference draw: ``n`` indices into the train split without replacement (with replacement if it is
    smaller), the same draw as ``GANDataModule.real_samples(n, Generator().manual_seed(seed))``."""
    return sample_indices(len(datamodule.train_set), n, torch.Generator().manual_seed(seed))


FeatureSet = dict[str, dict[str, Tensor]]  # extractor name -> layer (and "labels") -> (N, ...) tensor


class MetricSuite:
    """A selection of metrics run together under one recorded protocol.

    Args:
        compute: metric names, or a mapping name -> options (e.g. ``{"kid": {"subset_size": 100}}``).
        num_samples: fake samples per metric unless the metric sets its own (mode_coverage 2,500, stacked_modes 26,000).
        num_real: real samples for the reference statistics (capped at the size of the data's train split).
        batch_size: samples per generator / extractor call; batch b's latent codes come from (seed, b).
        inception_weights, dinov2_weights, clip_weights: local copies of the networks' weights; None: the
            torch hub cache, else downloaded (offline: an error before anything starts).
        dinov2_model: vit-s-14, vit-b-14 or vit-l-14 (None: vit-l-14); clip_model: torch-fidelity's CLIP
            names (None: vit-b-32).
        resize: ``torch-fidelity`` (default, comparable with published numbers) or ``clean`` (clean-fid).
        cache_dir: where real features are cached; None disables the cache.
        seed: seeds the latent codes and the choice of real samples, so two evaluations of the same
            generator see the same codes and the same references.
    """

    EXTRACTOR_SETTINGS = ("inception_weights", "dinov2_weights", "dinov2_model", "clip_weights", "clip_model", "resize")
    SETTINGS = ("compute", "num_samples", "num_real", "batch_size", "cache_dir", "seed", *EXTRACTOR_SETTINGS)

    def __init__(self, compute: Mapping[str, Mapping | None] | Sequence[str] = (), num_samples: int = 1000,
                 num_real: int = 5000, batch_size: int = 100, inception_weights: str | None = None,
                 dinov2_weights: str | None = None, dinov2_model: str | None = None, clip_weights: str | None = None,
                 clip_model: str | None = None, resize: str = RESIZE_MODES[0], cache_dir: str | None = None, seed: int = 0,
                 device: str | torch.device = "cpu", progress: bool = False, with_extractors: bool = True,
                 num_samples_option: str = "metrics.num_samples"):
        options = dict(compute) if isinstance(compute, Mapping) else {name: None for name in compute}
        self.metrics = [_build_metric(name, opts) for name, opts in options.items()]
        # the option a user sets for num_samples: evaluate.py's top-level num_samples, which metrics.num_samples
        # interpolates, was refused under the interpolated name (an audit)
        names = {"num_samples": num_samples_option, "num_real": "metrics.num_real", "batch_size": "metrics.batch_size"}
        for name, value in (("num_samples", num_samples), ("num_real", num_real), ("batch_size", batch_size)):
            if not 1 <= int(value) <= MAX_METRIC_SAMPLES:  # 1e12 spent minutes counting its batches, then days sampling (an audit)
                raise ConfigError(f"{names[name]}={value}: expected an integer from 1 to {MAX_METRIC_SAMPLES:,}")
        self.num_samples, self.num_real, self.batch_size = int(num_samples), int(num_real), int(batch_size)
        for metric in self.metrics:  # now, not at the first scoring step of a training run hours later
            fake_option = f"metrics.compute.{metric.name}.num_samples" if metric.num_samples else num_samples_option
            counts = {fake_option: self.fake_count(metric), **({"metrics.num_real": self.num_real} if metric.needs_real else {})}
            for option, count in counts.items():
                if count < metric.min_samples:
                    raise ConfigError(metric.too_few(option, count))
            metric.options(self.fake_count(metric))  # settings that do not fit the count fail now (fid_inf's counts)
        if cache_dir is not None and not str(cache_dir).strip():  # '' wrote the caches into the working folder (an audit)
            raise ConfigError(f"metrics.cache_dir={cache_dir!r}: expected a folder's path, or null (no cache)")
        self.cache_dir, self.seed, self.progress = cache_dir, int(seed), bool(progress)
        # the real features are stored there: a folder that cannot be written failed when they were, as a traceback
        # from each DDP rank after the whole extraction (an audit)
        if cache_dir and any(metric.needs_real for metric in self.metrics):
            from gan.utils.files import folder_write_problem

            problem = folder_write_problem(cache_dir)
            if problem is not None:
                raise ConfigError(f"metrics.cache_dir={cache_dir}: cannot write there ({problem}); expected a folder "
                                  "this user can create and write, or metrics.cache_dir=null (no cache)")
        self._told_equal_counts: set[str] = set()  # k-NN metrics cut to the reals' count: said once per suite
        self.resize = check_resize(resize)
        self.device = torch.device(device)
        settings = dict(inception_weights=inception_weights, dinov2_weights=dinov2_weights, dinov2_model=dinov2_model,
                        clip_weights=clip_weights, clip_model=clip_model, resize=self.resize, device=self.device)
        # built now so a missing weights file fails before any training or sampling; without them
        # (with_extractors=False) the suite only checks its selection against data and generators: a metric that
        # cannot apply is then named before the weights it would have needed are looked for
        self.extractors = {name: EXTRACTORS[name].from_settings(settings)
                           for name in dict.fromkeys(metric.extractor_name for metric in self.metrics)} if with_extractors else {}

    @classmethod
    def from_config(cls, node: Mapping, **overrides) -> "MetricSuite":
        """From a ``metrics`` config node; keys only the callback reads (interval, monitor) are ignored."""
        settings = {key: node[key] for key in cls.SETTINGS if key in node and node[key] is not None}
        check_options({key: value for key, value in settings.items() if key != "compute"}, cls, "metrics")
        return cls(**{"compute": (), **settings, **overrides})

    def to(self, device: str | torch.device) -> "MetricSuite":
        """Run the feature extractors where the generator lives."""
        self.device = torch.device(device)
        for extractor in self.extractors.values():
            extractor.to(self.device)
        return self

    def fake_count(self, metric: Metric) -> int:
        return metric.num_samples or self.num_samples

    def check_data(self, datamodule) -> None:
        for metric in self.metrics:
            metric.check_data(datamodule)

    def check_fake_count(self, count: int, source: str) -> None:
        """``count`` fakes from ``source`` (a folder): fewer than a metric needs is an error; fewer than it asks
        for a warning, as each metric then scores them all (its protocol's ``num_fake`` records how many)."""
        for metric in self.metrics:
            if count < metric.min_samples:
                raise DataError(f"{source} holds {count} images: {metric.name} needs at least {metric.min_samples}")
        short = [f"{metric.name} {self.fake_count(metric)}" for metric in self.metrics if self.fake_count(metric) > count]
        for metric in self.metrics:  # settings that do not fit the folder's count (fid_inf's counts) fail before extraction
            try:
                metric.options(min(count, self.fake_count(metric)))
            except ConfigError as error:
                raise ConfigError(f"{source} holds {count} images: {error}") from None
        if short:
            log.warning("%s holds %d images, fewer than asked for (%s): scoring %d (the protocol's num_fake)",
                        source, count, ", ".join(short), count)

    def check_generator(self, num_classes: int | None) -> None:
        """Per-class metrics need a class-conditional generator (``num_classes``; None: unconditional or a folder)."""
        for metric in self.metrics:
            metric.check_generator(num_classes, self.fake_count(metric))

    # ---------------------------------------------------------------------------------------- protocol
    def protocol(self, counts: Mapping[str, int] | None = None, num_real: int | None = None, datamodule=None,
                 latent_seed: int | None = None, num_classes: int | None = None) -> dict[str, Any]:
        counts, num_real = counts or {}, num_real or self.num_real
        metrics = {}
        for metric in self.metrics:
            num_fake = counts.get(metric.name, self.fake_count(metric))
            if metric.needs_real and metric.equal_counts:  # as many of each: the fakes cut too when the reals are fewer
                num_fake = min(num_fake, num_real)
            entry = {"num_fake": num_fake, "extractor": metric.extractor_name}
            if metric.needs_real:
                entry["num_real"] = num_fake if metric.equal_counts else num_real
            metrics[metric.name] = {**entry, **metric.options(num_fake, entry.get("num_real"))}
        needs_real = any(metric.needs_real for metric in self.metrics)
        split = reference_split(datamodule) if datamodule is not None else None
        return {
            "metrics": metrics,
            "extractors": {name: extractor.protocol() for name, extractor in self.extractors.items() if name != "raw"},
            "reference": {"split": split, "num_real": num_real, "seed": self.seed} if needs_real else None,
            # how the fakes were drawn, the same in one process and under DDP (None: not drawn here, e.g. a folder)
            "latent_seed": latent_seed,
            "latent_codes": None if latent_seed is None else f"batches of {self.batch_size}, batch b from a "
                            "torch.Generator seeded SeedSequence([latent_seed, b]).generate_state(1), a whole batch "
                            "drawn and the last cut to size",
            "class_labels": None if num_classes is None else f"sample i has class i mod {num_classes}",
        }

    # ------------------------------------------------------------------------------------------ scoring
    def evaluate_generator(self, generator, datamodule, data_identity: Any = None,
                           latent_seed: int | None = None) -> tuple[dict[str, float], dict[str, Any]]:
        """Scores ``generator`` (sampled in eval mode with fixed latent codes) against ``datamodule``'s train split.

        Under DDP every rank must call this: each draws and extracts its share of the batches, rank 0
        gathers the features and computes every metric once, and all ranks return rank 0's values."""
        seed = self.seed if latent_seed is None else int(latent_seed)
        num_classes = getattr(generator, "num_classes", None)
        if rank_and_world_size()[1] > 1:
            generator = replica_of_rank_zero(generator)

        def fake_batch(batch: int, start: int, size: int) -> tuple[Tensor, Tensor | None]:
            # A whole batch, cut to size: a CPU draw of n normals is not the first n of a longer draw (torch
            # fills a vectorised draw's tail differently), so a short last batch drew other codes when another
            # selected metric asked for more samples, and a metric's value depended on its companions (an audit).
            # (The whole batch is sampled and cut: at most one batch of extra generator work per evaluation.)
            codes = torch.Generator().manual_seed(batch_seed(seed, batch))
            if num_classes is None:
                return generator.sample(self.batch_size, generator=codes)[:size], None
            labels = torch.arange(start, start + self.batch_size) % num_classes  # balanced classes, known on every rank
            return generator.sample(self.batch_size, generator=codes, labels=labels)[:size], labels[:size]

        wanted = self._wanted()
        fake = self._extract_shared(fake_batch, max(wanted.values(), default=0), wanted, "fake features")
        values, protocol = self._score(fake, datamodule, data_identity, latent_seed=seed, num_classes=num_classes)
        return broadcast_from_rank_zero(values), protocol

    def evaluate(self, fake_batches: Iterable[Tensor], datamodule, data_identity: Any = None) -> tuple[dict[str, float], dict[str, Any]]:
        """Scores batches of fake samples (float, the data's value range; e.g. a folder of images), in one process."""
        wanted = self._wanted()
        parts, start = [], 0
        for batch in fake_batches:
            if start >= max(wanted.values(), default=0):
                break
            parts.append(self._features_of(batch, None, start, wanted))
            start += len(batch)
        return self._score(_concatenate(parts), datamodule, data_identity)

    def _wanted(self) -> dict[str, int]:
        """Extractor name -> how many fakes its metrics need."""
        wanted: dict[str, int] = {}
        for metric in self.metrics:
            wanted[metric.extractor_name] = max(wanted.get(metric.extractor_name, 0), self.fake_count(metric))
        return wanted

    def _score(self, fake: FeatureSet | None, datamodule, data_identity: Any, latent_seed: int | None = None,
               num_classes: int | None = None) -> tuple[dict[str, float], dict[str, Any]]:
        """Every metric from the fake features (on rank 0; None on the others) and the cached real ones."""
        real, num_real = self._real_features(datamodule, data_identity)
        if fake is None:  # another DDP rank: rank 0 scores
            counts = None
        else:
            counts = {m.name: min(self.fake_count(m), _length(fake.get(m.extractor_name, {}))) for m in self.metrics}
        protocol = self.protocol(counts, num_real, datamodule, latent_seed, num_classes)
        if fake is None:
            return {}, protocol
        values: dict[str, float] = {}
        for metric in self.metrics:
            entry = protocol["metrics"][metric.name]
            n = entry["num_fake"]
            if n < counts[metric.name] and metric.name not in self._told_equal_counts:  # a k-NN ball's reach depends on the count
                self._told_equal_counts.add(metric.name)
                log.warning("%s compares as many real as fake samples: scoring %d of each (%d real samples; %d fakes "
                            "asked for)", metric.name, n, num_real, counts[metric.name])
            fake_features = {layer: value[:n] for layer, value in fake[metric.extractor_name].items()}
            real_features = None
            if metric.needs_real:
                real_features = {layer: value[:entry["num_real"]] for layer, value in real[metric.extractor_name].items()}
            values.update(checked_values(metric, metric.compute(fake_features, real_features, datamodule)))
        return values, protocol

    def _features_of(self, samples: Tensor, labels: Tensor | None, start: int, wanted: Mapping[str, int]) -> FeatureSet:
        """Features of one batch (samples ``start``.. of the set) by every extractor that still needs them."""
        out: FeatureSet = {}
        for name, limit in wanted.items():
            if start < limit:
                take = limit - start
                out[name] = self.extractors[name](samples[:take])
                if labels is not None:
                    out[name][LABELS] = labels[:take].cpu()
        return out

    def _extract_shared(self, make_batch: Callable[[int, int, int], tuple[Tensor, Tensor | None]], total: int,
                        wanted: Mapping[str, int], what: str) -> FeatureSet | None:
        """Features of samples 0..total-1, made batch by batch by ``make_batch(batch, start, size)`` ->
        (samples, labels or None). Under DDP each rank makes and extracts its share of the batches; rank 0
        gets every feature in batch order (the single-process order), the other ranks None."""
        from tqdm.auto import tqdm

        rank, world_size = rank_and_world_size()
        batches = Batches(total, self.batch_size)
        mine = batches.of_rank(rank, world_size)
        local = {}
        with tqdm(total=sum(map(batches.size, mine)), desc=what, unit="sample", leave=False,
                  disable=not self.progress or rank != 0 or total == 0) as bar:  # no metrics: no bar
            for batch in mine:
                start, size = batches.start(batch), batches.size(batch)
                samples, labels = make_batch(batch, start, size)
                local[batch] = self._features_of(samples, labels, start, wanted)
                bar.update(size)
        shares = gather_to_rank_zero(local)
        if shares is None:
            return None
        merged = {batch: features for share in shares for batch, features in share.items()}
        return _concatenate([merged[batch] for batch in range(len(batches))])

    def _real_features(self, datamodule, data_identity: Any) -> tuple[FeatureSet | None, int | None]:
        """Real features of every extractor a metric needs them from: read from the cache on rank 0, else
        extracted (each DDP rank its share) and written to the cache by rank 0 alone."""
        extractors = list(dict.fromkeys(m.extractor_name for m in self.metrics if m.needs_real))
        if not extractors:
            return {}, None
        if datamodule.train_set is None:
            datamodule.setup("fit")
        num_real = min(self.num_real, len(datamodule.train_set))
        identity = data_identity if data_identity is not None else {"data": datamodule.name, "sample_shape": list(datamodule.sample_shape)}
        content, code = data_content(datamodule), feature_code(datamodule)
        keys = {name: cache_key(extractor=self.extractors[name].protocol(), data=identity, content=content, code=code,
                                num_real=num_real, seed=self.seed) for name in extractors}
        is_rank_zero = rank_and_world_size()[0] == 0
        real = {name: load_cached_features(self.cache_dir, name, keys[name]) if is_rank_zero else None for name in extractors}
        missing = broadcast_from_rank_zero([name for name in extractors if real[name] is None])
        if is_rank_zero:
            for name in extractors:
                if name in missing:
                    log.info("computing %s features of %d real samples (cached afterwards)", name, num_real)
                else:
                    log.info("real %s features read from the cache in %s", name, self.cache_dir)
        if missing:
            indices = real_sample_indices(datamodule, num_real, self.seed)
            labelled = datamodule.num_classes is not None

            def real_batch(batch: int, start: int, size: int) -> tuple[Tensor, Tensor | None]:
                items = [datamodule.train_set[int(i)] for i in indices[start:start + size]]
                labels = torch.tensor([int(label) for _, label in items]) if labelled else None
                return torch.stack([sample for sample, _ in items]), labels

            extracted = self._extract_shared(real_batch, num_real, {name: num_real for name in missing}, "real features")
            if extracted is not None:
                for name in missing:
                    real[name] = extracted[name]
                    store_features(self.cache_dir, name, keys[name], extracted[name])
        return (real if is_rank_zero else None), num_real


def replica_of_rank_zero(generator):
    """A copy of ``generator`` holding rank 0's parameters and buffers. DDP keeps parameters equal but not
    buffers (BatchNorm running statistics are updated by each rank's own batches), and eval-mode sampling
    reads them; a copy, so the training run itself is left untouched."""
    replica = copy.deepcopy(generator)
    for tensor in replica.state_dict().values():
        dist.broadcast(tensor, src=0)
    return replica


def _concatenate(parts: Sequence[FeatureSet]) -> FeatureSet:
    layers: dict[str, dict[str, list[Tensor]]] = {}
    for part in parts:
        for name, features in part.items():
            for layer, value in features.items():
                layers.setdefault(name, {}).setdefault(layer, []).append(value)
    return {name: {layer: torch.cat(values) for layer, values in features.items()} for name, features in layers.items()}


def _length(features: dict[str, Tensor]) -> int:
    return len(next(iter(features.values()))) if features else 0


def image_folder_batches(folder: str | Path, channels: int, batch_size: int) -> tuple[Iterator[Tensor], int]:
    """Images of a folder (png/jpg, sorted by name) as float batches in [-1, 1], with ``channels`` channels."""
    import numpy as np
    from PIL import Image

    folder = Path(folder)
    if channels not in (1, 3):
        raise ConfigError(f"fake_path={folder}: the data's samples have {channels} channels; a folder of images "
                          "can only be scored against gray or RGB image data")
    if not folder.is_dir():
        raise DataError(f"fake_path={folder} is not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    if not files:
        raise DataError(f"fake_path={folder} holds no .png/.jpg images")
    mode = {1: "L", 3: "RGB"}[channels]

    def read(path: Path, pixels: bool = True):
        try:
            with Image.open(path) as image:
                return np.asarray(image.convert(mode)).reshape(*image.size[::-1], channels) if pixels else image.size
        except OSError as error:  # not an image (PIL.UnidentifiedImageError), or truncated (seen when the pixels load)
            raise DataError(f"fake_path={folder}: cannot read {path.name} ({error}); expected a .png or .jpg image") from None

    # every header now (PIL reads no pixels for it): a bad file or a second size fails before any feature is extracted
    sizes = {path: read(path, pixels=False) for path in files}
    for path, size in sizes.items():
        if size != sizes[files[0]]:
            raise DataError(f"fake_path={folder}: {path.name} is {size[0]}x{size[1]} but {files[0].name} is "
                            f"{sizes[files[0]][0]}x{sizes[files[0]][1]}; expected images of one size")

    def batches() -> Iterator[Tensor]:
        for start in range(0, len(files), batch_size):
            arrays = [read(path) for path in files[start:start + batch_size]]
            pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
            yield pixels.float().div(127.5).sub(1.0)

    return batches(), len(files)
