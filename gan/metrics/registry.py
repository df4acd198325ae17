"""The metric registry shared by the training callback and evaluate.py.

``METRICS`` maps a name to a small class that turns features into numbers with torch-fidelity's functions;
``MetricSuite`` runs a selection of them: it draws the fake samples once, runs each feature extractor once
over them, reads the real features from the on-disk cache, and returns the values together with the
protocol (extractor, weights, resize, sample counts, reference split) that produced them.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator, Mapping, Sequence

import torch
from torch import Tensor

from gan.metrics.cache import cache_key, cached_features
from gan.metrics.features import DigitFeatures, DigitPerChannel, InceptionFeatures, RawSamples
from gan.metrics.modes import mode_coverage, stacked_modes

log = logging.getLogger("gan")


class Metric:
    """One metric: which extractor it reads, how many fake samples it takes, how to score features."""

    name: ClassVar[str]
    extractor: ClassVar[type]
    #: the values a checkpoint can monitor -> whether larger is better; the first is the headline
    directions: ClassVar[dict[str, bool]]
    needs_real: ClassVar[bool] = True

    @classmethod
    def headline(cls) -> str:
        return next(iter(cls.directions))

    def __init__(self, num_samples: int | None = None):
        #: fake samples this metric takes; None: the suite's ``num_samples``
        self.num_samples = None if num_samples is None else int(num_samples)

    def options(self) -> dict[str, Any]:
        return {}

    def check_data(self, datamodule) -> None:
        if getattr(datamodule, "kind", "image") != "image":
            raise ValueError(f"metric {self.name} scores images, but data {datamodule.name} yields {getattr(datamodule, 'kind', '?')}")

    def compute(self, fake: dict[str, Tensor], real: dict[str, Tensor] | None, datamodule) -> dict[str, float]:
        raise NotImplementedError


class FID(Metric):
    """Frechet Inception Distance (Heusel et al. 2017), torch-fidelity's statistics and formula."""

    name, extractor, layer = "fid", InceptionFeatures, "2048"
    directions = {"fid": False}

    def compute(self, fake, real, datamodule):
        from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

        statistics = [fid_features_to_statistics(features[self.layer]) for features in (fake, real)]
        return {self.name: fid_statistics_to_metric(*statistics, verbose=False)[KEY_METRIC_FID]}


class FIDDigits(FID):
    """FID in the feature space of the shipped digit classifier: comparable across runs of this project
    on digit data, NOT with Inception FIDs in papers."""

    name, extractor, layer = "fid_digits", DigitFeatures, "features"
    directions = {"fid_digits": False}

    def check_data(self, datamodule):
        super().check_data(datamodule)
        if datamodule.sample_shape[0] not in (1, 3):
            raise ValueError(f"fid_digits needs gray digit images (1 or 3 equal channels), but data {datamodule.name} yields {list(datamodule.sample_shape)}")


class InceptionScore(Metric):
    """Inception Score (Salimans et al. 2016) on torch-fidelity's unbiased logits; needs no real data."""

    name, extractor, needs_real = "is", InceptionFeatures, False
    directions = {"is": True}

    def __init__(self, num_samples: int | None = None, splits: int = 10, seed: int = 2020):
        super().__init__(num_samples)
        self.splits, self.seed = int(splits), int(seed)

    def options(self):
        return {"splits": self.splits, "shuffle_seed": self.seed}

    def compute(self, fake, real, datamodule):
        from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

        logits = fake["logits_unbiased"]
        out = isc_features_to_metric(logits, splits=min(self.splits, len(logits)), shuffle=True, rng_seed=self.seed)
        return {"is": out[KEY_METRIC_ISC_MEAN], "is_std": out[KEY_METRIC_ISC_STD]}


class KID(Metric):
    """Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel,
    averaged over random subsets (torch-fidelity's estimator). Subsets shrink to the sample count."""

    name, extractor = "kid", InceptionFeatures
    directions = {"kid": False}

    def __init__(self, num_samples: int | None = None, subsets: int = 100, subset_size: int = 1000, seed: int = 2020):
        super().__init__(num_samples)
        self.subsets, self.subset_size, self.seed = int(subsets), int(subset_size), int(seed)

    def options(self):
        return {"subsets": self.subsets, "subset_size": self.subset_size, "subset_seed": self.seed,
                "kernel": "(x.y / d + 1)^3"}

    def compute(self, fake, real, datamodule):
        from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

        fake_features, real_features = fake["2048"], real["2048"]
        size = min(self.subset_size, len(fake_features), len(real_features))
        out = kid_features_to_metric(fake_features, real_features, kid_subsets=self.subsets, kid_subset_size=size,
                                     rng_seed=self.seed, verbose=False)
        return {"kid": out[KEY_METRIC_KID_MEAN], "kid_std": out[KEY_METRIC_KID_STD]}


class PrecisionRecall(Metric):
    """Improved precision and recall (Kynkaanniemi et al. 2019): k-NN balls around real and fake features."""

    name, extractor = "prc", InceptionFeatures
    directions = {"prc/f_score": True, "prc/precision": True, "prc/recall": True}

    def __init__(self, num_samples: int | None = None, neighborhood: int = 3):
        super().__init__(num_samples)
        self.neighborhood = int(neighborhood)

    def options(self):
        return {"neighborhood": self.neighborhood}

    def compute(self, fake, real, datamodule):
        from torch_fidelity.metric_prc import prc_features_to_metric

        out = prc_features_to_metric(fake["2048"], real["2048"], prc_neighborhood=self.neighborhood, verbose=False)
        return {f"prc/{key}": value for key, value in out.items()}


class ModeCoverage(Metric):
    """PacGAN's 2D mode coverage (Lin et al. 2018): modes captured, high-quality fraction, reverse KL."""

    name, extractor, needs_real = "mode_coverage", RawSamples, False
    directions = {"mode_coverage/modes": True, "mode_coverage/high_quality": True, "mode_coverage/reverse_kl": False}

    def __init__(self, num_samples: int | None = 2500, std_multiple: float = 3.0):
        super().__init__(num_samples)
        self.std_multiple = float(std_multiple)

    def options(self):
        return {"high_quality_within_std": self.std_multiple}

    def check_data(self, datamodule):
        if getattr(datamodule, "modes", None) is None or getattr(datamodule, "std", None) is None:
            raise ValueError(f"mode_coverage needs a 2D Gaussian mixture (data=toy2d_*), got data {datamodule.name}")

    def compute(self, fake, real, datamodule):
        out = mode_coverage(fake["samples"], datamodule.modes, datamodule.std, self.std_multiple)
        return {f"mode_coverage/{key}": value for key, value in out.items()}


class StackedModes(Metric):
    """Stacked MNIST modes (VEEGAN / PacGAN): each channel read by the digit classifier; 1,000 modes."""

    name, extractor, needs_real = "stacked_modes", DigitPerChannel, False
    directions = {"stacked_modes/modes": True, "stacked_modes/kl": False}

    def __init__(self, num_samples: int | None = 26000):
        super().__init__(num_samples)

    def check_data(self, datamodule):
        super().check_data(datamodule)
        if datamodule.sample_shape[0] != 3:
            raise ValueError(f"stacked_modes needs 3-channel Stacked MNIST images, but data {datamodule.name} yields {list(datamodule.sample_shape)}")

    def compute(self, fake, real, datamodule):
        return {f"stacked_modes/{key}": value for key, value in stacked_modes(fake["digits"]).items()}


METRICS: dict[str, type[Metric]] = {cls.name: cls for cls in (FID, FIDDigits, InceptionScore, KID, PrecisionRecall, ModeCoverage, StackedModes)}


def metric_class(name: str) -> type[Metric]:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; expected one of {sorted(METRICS)}")
    return METRICS[name]


def _build_metric(name: str, options: Mapping | None) -> Metric:
    cls = metric_class(name)
    try:
        return cls(**dict(options or {}))
    except TypeError as error:  # a misspelt option
        raise ValueError(f"metrics.compute.{name}: {error}") from None


def best_monitor(monitor: str | None, compute: Mapping | Sequence | None) -> tuple[str | None, str]:
    """(logged key, "min"/"max") a best checkpoint follows: ``monitor`` if set, else the first metric's headline."""
    names = list(compute or [])
    if monitor is None:
        if not names:
            return None, "min"
        monitor = metric_class(names[0]).headline()
    monitor = monitor.removeprefix("val/")
    directions = {key: higher for cls in map(metric_class, names) for key, higher in cls.directions.items()}
    if monitor not in directions:
        raise ValueError(f"metrics.monitor={monitor!r} is not computed by the selected metrics {names}; expected one of {sorted(directions)}")
    return f"val/{monitor}", "max" if directions[monitor] else "min"


class MetricSuite:
    """A selection of metrics run together under one recorded protocol.

    Args:
        compute: metric names, or a mapping name -> options (e.g. ``{"kid": {"subset_size": 100}}``).
        num_samples: fake samples per metric unless the metric sets its own (mode_coverage 2,500, stacked_modes 26,000).
        num_real: real samples for the reference statistics (capped at the size of the data's train split).
        batch_size: samples per generator / extractor call.
        inception_weights: a local copy of torch-fidelity's Inception weights; None downloads them.
        cache_dir: where real features are cached; None disables the cache.
        seed: seeds the latent codes and the choice of real samples, so two evaluations of the same
            generator see the same codes and the same references.
    """

    def __init__(self, compute: Mapping[str, Mapping | None] | Sequence[str] = (), num_samples: int = 1000,
                 num_real: int = 5000, batch_size: int = 100, inception_weights: str | None = None,
                 cache_dir: str | None = None, seed: int = 0, device: str | torch.device = "cpu", progress: bool = False):
        options = dict(compute) if isinstance(compute, Mapping) else {name: None for name in compute}
        self.metrics = [_build_metric(name, opts) for name, opts in options.items()]
        for name, value in (("num_samples", num_samples), ("num_real", num_real), ("batch_size", batch_size)):
            if int(value) < 1:
                raise ValueError(f"metrics.{name} must be a positive integer, got {value}")
        self.num_samples, self.num_real, self.batch_size = int(num_samples), int(num_real), int(batch_size)
        self.cache_dir, self.seed, self.progress = cache_dir, int(seed), bool(progress)
        self.device = torch.device(device)
        # built now so a missing Inception weights file fails before any training or sampling
        self.extractors = {}
        for cls in dict.fromkeys(metric.extractor for metric in self.metrics):
            self.extractors[cls.name] = cls(inception_weights, self.device) if cls is InceptionFeatures else cls(device=self.device)

    SETTINGS = ("compute", "num_samples", "num_real", "batch_size", "inception_weights", "cache_dir", "seed")

    @classmethod
    def from_config(cls, node: Mapping, **overrides) -> "MetricSuite":
        """From a ``metrics`` config node; keys only the callback reads (interval, monitor) are ignored."""
        settings = {key: node[key] for key in cls.SETTINGS if key in node}
        if settings.get("compute") is None:
            settings["compute"] = ()
        return cls(**{**settings, **overrides})

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

    # ---------------------------------------------------------------------------------------- protocol
    def protocol(self, counts: Mapping[str, int] | None = None, num_real: int | None = None) -> dict[str, Any]:
        counts = counts or {}
        needs_real = any(metric.needs_real for metric in self.metrics)
        return {
            "metrics": {m.name: {"num_fake": counts.get(m.name, self.fake_count(m)), "extractor": m.extractor.name, **m.options()}
                        for m in self.metrics},
            "extractors": {name: extractor.protocol() for name, extractor in self.extractors.items() if name != RawSamples.name},
            "reference": {"split": "train", "num_real": num_real or self.num_real, "seed": self.seed} if needs_real else None,
            "latent_seed": self.seed,
        }

    # ------------------------------------------------------------------------------------------ scoring
    def evaluate_generator(self, generator, datamodule, data_identity: Any = None) -> tuple[dict[str, float], dict[str, Any]]:
        """Scores ``generator`` (sampled in eval mode with fixed latent codes) against ``datamodule``'s train split."""
        rng = torch.Generator().manual_seed(self.seed)
        total = max((self.fake_count(m) for m in self.metrics), default=0)

        def batches() -> Iterator[Tensor]:
            for start in range(0, total, self.batch_size):
                yield generator.sample(min(self.batch_size, total - start), generator=rng)

        return self.evaluate(batches(), datamodule, data_identity)

    def evaluate(self, fake_batches: Iterable[Tensor], datamodule, data_identity: Any = None) -> tuple[dict[str, float], dict[str, Any]]:
        """Scores batches of fake samples (float, the data's value range); returns (values, protocol)."""
        if not self.metrics:
            return {}, self.protocol()
        wanted: dict[str, int] = {}
        for metric in self.metrics:
            name = metric.extractor.name
            wanted[name] = max(wanted.get(name, 0), self.fake_count(metric))
        fake = self._extract(fake_batches, wanted, "fake features")
        counts = {m.name: min(self.fake_count(m), _length(fake[m.extractor.name])) for m in self.metrics}
        real, num_real = self._real_features(datamodule, data_identity)
        values: dict[str, float] = {}
        for metric in self.metrics:
            n = counts[metric.name]
            fake_features = {layer: value[:n] for layer, value in fake[metric.extractor.name].items()}
            values.update(metric.compute(fake_features, real.get(metric.extractor.name) if metric.needs_real else None, datamodule))
        return values, self.protocol(counts, num_real)

    def _extract(self, batches: Iterable[Tensor], wanted: Mapping[str, int], what: str) -> dict[str, dict[str, Tensor]]:
        """Features of the batches by every extractor in ``wanted``, each only as far as it needs."""
        from tqdm.auto import tqdm

        total = max(wanted.values())
        collected: dict[str, dict[str, list[Tensor]]] = {name: {} for name in wanted}
        seen = 0
        with tqdm(total=total, desc=what, unit="sample", disable=not self.progress, leave=False) as bar:
            for batch in batches:
                for name, limit in wanted.items():
                    if seen < limit:
                        for layer, value in self.extractors[name](batch[: limit - seen]).items():
                            collected[name].setdefault(layer, []).append(value)
                seen += len(batch)
                bar.update(len(batch))
                if seen >= total:
                    break
        return {name: {layer: torch.cat(parts) for layer, parts in layers.items()} for name, layers in collected.items()}

    def _real_features(self, datamodule, data_identity: Any) -> tuple[dict[str, dict[str, Tensor]], int | None]:
        extractors = list(dict.fromkeys(m.extractor.name for m in self.metrics if m.needs_real))
        if not extractors:
            return {}, None
        if datamodule.train_set is None:
            datamodule.setup("fit")
        num_real = min(self.num_real, len(datamodule.train_set))
        identity = data_identity if data_identity is not None else {"data": datamodule.name, "sample_shape": list(datamodule.sample_shape)}
        real: dict[str, dict[str, Tensor]] = {}
        for name in extractors:
            extractor = self.extractors[name]
            key = cache_key(extractor=extractor.protocol(), data=identity, split="train", num_real=num_real, seed=self.seed)

            def compute() -> dict[str, Tensor]:
                log.info("computing %s features of %d real samples (cached afterwards)", name, num_real)
                samples = datamodule.real_samples(num_real, generator=torch.Generator().manual_seed(self.seed))
                return self._extract(samples.split(self.batch_size), {name: num_real}, "real features")[name]

            real[name], hit = cached_features(self.cache_dir, name, key, compute)
            if hit:
                log.info("real %s features read from the cache in %s", name, self.cache_dir)
        return real, num_real


def _length(features: dict[str, Tensor]) -> int:
    return len(next(iter(features.values())))


def image_folder_batches(folder: str | Path, channels: int, batch_size: int) -> tuple[Iterator[Tensor], int]:
    """Images of a folder (png/jpg, sorted by name) as float batches in [-1, 1], with ``channels`` channels."""
    import numpy as np
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"fake_path={folder} is not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    if not files:
        raise FileNotFoundError(f"fake_path={folder} holds no .png/.jpg images")
    mode = {1: "L", 3: "RGB"}[channels]

    def batches() -> Iterator[Tensor]:
        for start in range(0, len(files), batch_size):
            arrays = []
            for path in files[start:start + batch_size]:
                with Image.open(path) as image:
                    arrays.append(np.asarray(image.convert(mode)).reshape(*image.size[::-1], channels))
            pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
            yield pixels.float().div(127.5).sub(1.0)

    return batches(), len(files)
