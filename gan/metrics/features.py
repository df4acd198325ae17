"""Feature extractors the metrics share. Each maps a batch of samples (images float in [-1, 1]) to named
feature layers and describes itself in ``protocol()``, which goes into every report and cache key.

Inception, DINOv2 and CLIP are torch-fidelity's networks and input pipelines: images are quantised to
uint8 exactly as a PNG writer does, grayscale is repeated to RGB, then each network resizes to its input
size. ``resize`` picks how:

- ``torch-fidelity`` (default, comparable with published numbers): torch-fidelity's TF1-style bilinear
  interpolation, no antialiasing (torchmetrics >= 1.8 antialiases by default, which shifts FID). The same
  numbers come out of ``fidelity --fid --input1 fakes/ --input2 reals/``.
- ``clean``: clean-fid's rule (Parmar et al. 2022): PIL bicubic, which is antialiased, on each channel of
  the uint8 image, kept as float (no second quantisation), then the network.

The digit classifier (``fid_digits``, ``class_accuracy``, ``stacked_modes``) reads 28x28 gray digits and
resizes other sizes with antialiased bilinear interpolation (``torch-fidelity``) or the clean rule.
"""
from __future__ import annotations

import hashlib
import os
import socket
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Mapping
from urllib.parse import urlparse

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from gan.utils.checkpoint import torch_file_problem
from gan.utils.errors import ConfigError, UserError

#: how long to wait for a weights server before declaring the machine offline
CONNECT_TIMEOUT_S = 3.0
RESIZE_MODES = ("torch-fidelity", "clean")
CLEAN_RESIZE = "clean-fid: PIL bicubic (antialiased) on each channel of the uint8 image, kept as float"


class MetricsUnavailableError(UserError, RuntimeError):
    """A metric's network weights are neither given, cached nor downloadable."""


def to_uint8(images: Tensor) -> Tensor:
    """[-1, 1] floats -> uint8 with torchvision.utils.save_image's rounding, so in-memory samples and the
    PNGs written from them give identical features."""
    return (images.detach().float().clamp(-1, 1) + 1).mul(127.5).add(0.5).clamp(0, 255).to(torch.uint8)


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def can_reach(host: str = "github.com", port: int = 443, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_resize(resize: str) -> str:
    if resize not in RESIZE_MODES:
        raise ConfigError(f"metrics.resize={resize!r} is not a resize rule; expected one of {list(RESIZE_MODES)}")
    return resize


def clean_resize(pixels: Tensor, size: int) -> Tensor:
    """clean-fid's resize of uint8 images (N, C, H, W) to (N, C, size, size) float32 in [0, 255]: each channel
    as a 32-bit float PIL image, PIL bicubic (its kernel widens with the downscale factor: antialiased),
    clipped, not re-quantised."""
    from PIL import Image

    planes = pixels.cpu().numpy()
    out = np.empty((*planes.shape[:2], size, size), dtype=np.float32)
    for index in np.ndindex(*planes.shape[:2]):
        out[index] = np.asarray(Image.fromarray(planes[index].astype(np.float32)).resize((size, size), Image.BICUBIC))
    return torch.from_numpy(out.clip(0, 255))


@contextmanager
def accepting_float_pixels(net: torch.nn.Module) -> Iterator[None]:
    """torch-fidelity's networks assert uint8 input (then convert it to float and resize); clean-fid's resize
    yields float pixels already at the input size, where that resize is the identity. This lifts the one
    uint8 assertion (torch-fidelity's ``vassert`` in the module defining ``forward``) for the block."""
    module = sys.modules[type(net).forward.__module__]
    original = module.vassert

    def vassert(condition, message):
        if not condition and "uint8" not in message:
            original(condition, message)

    module.vassert = vassert
    try:
        yield
    finally:
        module.vassert = original


@dataclass(frozen=True)
class WeightsFile:
    """Where a network's weights come from: a local file (``option``), the torch hub cache, or ``url``."""

    option: str
    file_name: str
    url: str

    def resolve(self, path: str | None) -> str | None:
        """The file to load; None when it may be downloaded on first use; raises when neither works.

        Called when a metric suite is built, i.e. before training or evaluation starts, so a missing file
        never surfaces hours later."""
        if path:
            if not Path(path).is_file():
                raise MetricsUnavailableError(f"{self.option}={path} is not a file; expected a copy of {self.file_name}")
            problem = torch_file_problem(Path(path), "weights file")
            if problem is not None:  # read only at the first scoring step otherwise, after training up to it
                raise MetricsUnavailableError(f"{self.option}={path}: {problem}; expected a copy of {self.file_name}")
            return str(path)
        cached = self.cached_path
        if cached.is_file():
            return str(cached)
        if not can_reach(urlparse(self.url).hostname):
            raise MetricsUnavailableError(
                f"{self.file_name} is not in the torch hub cache ({cached.parent}) and {urlparse(self.url).hostname} "
                f"is unreachable; download {self.url} elsewhere and pass {self.option}=/path/to/it")
        return None

    @property
    def cached_path(self) -> Path:
        return Path(torch.hub.get_dir()) / "checkpoints" / self.file_name


class Extractor:
    """Named feature layers of a batch; the network, if any, is built on first use (``net``).

    ``distance_layer`` is what distance metrics (FID, KID, precision/recall, density/coverage) read,
    ``logits_layer`` what the Inception-Score family reads (None: this extractor has no class logits)."""

    name: str
    layers: tuple[str, ...]
    distance_layer: str | None = None
    logits_layer: str | None = None
    device = torch.device("cpu")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "Extractor":
        """From the metric suite's settings (``resize``, ``device``; :class:`FidelityFeatures` also reads
        ``<name>_weights`` and ``<name>_model``)."""
        return cls(device=settings.get("device", "cpu"), resize=settings.get("resize", RESIZE_MODES[0]))

    def to(self, device: str | torch.device) -> "Extractor":
        self.device = torch.device(device)
        if "net" in self.__dict__:  # already built
            self.net.to(self.device)
        return self


class FidelityFeatures(Extractor):
    """A torch-fidelity network: uint8 RGB in, its own resize to ``input_size``, named features out."""

    #: the torch-fidelity extractor name, e.g. ``inception-v3-compat``
    fidelity_name: str
    weights: WeightsFile
    #: the default of ``metrics.<name>_model`` for extractors with several backbones; None: one network
    default_model: str | None = None
    #: what ``resize=torch-fidelity`` does, for the protocol
    default_resize = "torch-fidelity TF1-style bilinear to the network's input size, no antialias"

    def __init__(self, weights: str | None = None, device: str | torch.device = "cpu", resize: str = RESIZE_MODES[0]):
        self.weights_path = self.weights.resolve(weights)
        self.device = torch.device(device)
        self.resize = check_resize(resize)

    @classmethod
    def from_settings(cls, settings):
        backbone = {} if cls.default_model is None else {"model": settings.get(f"{cls.name}_model") or cls.default_model}
        return cls(settings.get(f"{cls.name}_weights"), device=settings.get("device", "cpu"),
                   resize=settings.get("resize", RESIZE_MODES[0]), **backbone)

    def build(self) -> torch.nn.Module:
        raise NotImplementedError

    @cached_property
    def net(self) -> torch.nn.Module:
        # its random init (overwritten by the weights) must not advance the training run's RNG
        with torch.random.fork_rng(devices=[]):
            net = self.build()
        return net.to(self.device)

    @property
    def input_size(self) -> int:
        return self.net.INPUT_IMAGE_SIZE

    @cached_property
    def _weights_protocol(self) -> dict[str, Any]:
        weights = self.weights_path or self.weights.file_name
        # the standard file is identified by its name; any other by its content
        custom = self.weights_path is not None and Path(weights).name != self.weights.file_name
        return {"weights": Path(weights).name, "weights_sha256": sha256_of(weights)[:16] if custom else None}

    def protocol(self) -> dict[str, Any]:
        return {"extractor": f"torch-fidelity {self.fidelity_name}", **self._weights_protocol,
                "input": "uint8 RGB (grayscale repeated), rounded like PNG",
                "resize": CLEAN_RESIZE if self.resize == "clean" else self.default_resize}

    @torch.no_grad()
    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        if images.dim() != 4 or images.size(1) not in (1, 3):
            raise ValueError(f"{self.name} features take images of shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
        pixels = to_uint8(images)
        if pixels.size(1) == 1:
            pixels = pixels.repeat(1, 3, 1, 1)
        if self.resize == "clean":
            with accepting_float_pixels(self.net):
                outputs = self.net(clean_resize(pixels, self.input_size).to(self.device))
        else:
            outputs = self.net(pixels.to(self.device))
        features = {layer: value.cpu() for layer, value in zip(self.layers, outputs)}
        # to_uint8 turns NaN into 0 and inf into 255, so a diverged generator's samples scored as black or white
        # images with a finite FID, KID or IS (an audit); their features are NaN instead, as the digit classifier's are
        broken = ~torch.isfinite(images.detach()).flatten(1).all(1).cpu()
        if bool(broken.any()):
            for value in features.values():
                value[broken] = float("nan")
        return features


INCEPTION_RESIZE = "torch-fidelity TF1-style bilinear to 299x299, no antialias (== torchmetrics antialias=False)"


class InceptionFeatures(FidelityFeatures):
    """torch-fidelity's Inception-v3: the 2048-d pool features (FID, KID, PRC) and unbiased logits (IS)."""

    name, fidelity_name = "inception", "inception-v3-compat"
    layers = ("2048", "logits_unbiased")
    distance_layer, logits_layer = "2048", "logits_unbiased"
    default_resize = INCEPTION_RESIZE
    weights = WeightsFile("metrics.inception_weights", "weights-inception-2015-12-05-6726825d.pth",
                          "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth")

    def build(self):
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        return FeatureExtractorInceptionV3(self.fidelity_name, list(self.layers), feature_extractor_weights_path=self.weights_path)


class DinoV2Features(FidelityFeatures):
    """DINOv2 ViT/14 CLS features (Oquab et al. 2023; Stein et al. 2023 recommend ViT-L/14 for FD_DINOv2),
    through torch-fidelity's extractor around the network in ``gan/metrics/dinov2.py`` (no torch.hub)."""

    name, default_model = "dinov2", "vit-l-14"
    layers = ("dinov2",)
    distance_layer = "dinov2"

    def __init__(self, weights: str | None = None, model: str | None = None, device: str | torch.device = "cpu",
                 resize: str = RESIZE_MODES[0]):
        from gan.metrics.dinov2 import ARCHITECTURES, WEIGHTS_URL, weights_file_stem

        model = model or self.default_model
        if model not in ARCHITECTURES:
            raise ConfigError(f"metrics.dinov2_model={model!r} is not a DINOv2 backbone; expected one of {list(ARCHITECTURES)}")
        self.model, self.fidelity_name = model, f"dinov2-{model}"
        stem = weights_file_stem(model)
        self.weights = WeightsFile("metrics.dinov2_weights", f"{stem}_pretrain.pth", WEIGHTS_URL.format(stem=stem))
        super().__init__(weights, device, resize)

    def build(self):
        from gan.metrics.dinov2 import torch_fidelity_extractor

        if self.weights_path is None:
            state = torch.hub.load_state_dict_from_url(self.weights.url, map_location="cpu")
        else:
            state = torch.load(self.weights_path, map_location="cpu", weights_only=True)
        try:
            return torch_fidelity_extractor(self.model, state)
        except RuntimeError as error:  # another backbone's file, or not a DINOv2 state dict
            raise MetricsUnavailableError(f"{self.weights_path or self.weights.url} does not hold DINOv2 {self.model} "
                                          f"weights (metrics.dinov2_model): {str(error).splitlines()[0]}") from None


class CLIPFeatures(FidelityFeatures):
    """CLIP image embeddings (Radford et al. 2021), torch-fidelity's extractor; the weights file is OpenAI's
    TorchScript archive (torch-fidelity caches it as ``clip-<model>-<sha256>.pt``)."""

    name, default_model = "clip", "vit-b-32"
    layers = ("clip",)
    distance_layer = "clip"

    def __init__(self, weights: str | None = None, model: str | None = None, device: str | torch.device = "cpu",
                 resize: str = RESIZE_MODES[0]):
        from torch_fidelity.feature_extractor_clip import MODEL_METADATA, MODEL_URLS

        model = model or self.default_model
        self.fidelity_name = f"clip-{model}"
        if self.fidelity_name not in MODEL_URLS:
            choices = [name.removeprefix("clip-") for name in MODEL_URLS]
            raise ConfigError(f"metrics.clip_model={model!r} is not a CLIP model; expected one of {choices}")
        self.model = model
        self.weights = WeightsFile("metrics.clip_weights", f"{self.fidelity_name}-{MODEL_METADATA[self.fidelity_name]['hash']}.pt",
                                   MODEL_URLS[self.fidelity_name])
        super().__init__(weights, device, resize)

    def build(self):
        from torch_fidelity.feature_extractor_clip import FeatureExtractorCLIP

        return FeatureExtractorCLIP(self.fidelity_name, list(self.layers), feature_extractor_weights_path=self.weights_path,
                                    verbose=False)

    @property
    def input_size(self) -> int:
        return self.net.resolution


# ----------------------------------------------------------------------------------- digit classifier
def to_digit_size(images: Tensor, resize: str = RESIZE_MODES[0]) -> Tensor:
    """The classifier's 28x28, for digit data generated at 32 or 64 pixels."""
    if tuple(images.shape[2:]) == (28, 28):
        return images
    if resize == "clean":
        return clean_resize(to_uint8(images), 28).to(images.device) / 127.5 - 1
    return F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False, antialias=True)


class DigitFeatures(Extractor):
    """The shipped digit classifier: 64-d penultimate features (fid_digits) and logits."""

    name = "digit_classifier"
    layers = ("features", "logits")
    distance_layer, logits_layer = "features", "logits"

    def __init__(self, weights: str | None = None, device: str | torch.device = "cpu", resize: str = RESIZE_MODES[0]):
        from gan.metrics.digit_classifier import WEIGHTS_PATH

        self.weights_path = Path(weights) if weights else WEIGHTS_PATH
        self.device = torch.device(device)
        self.resize = check_resize(resize)

    @cached_property
    def net(self):
        from gan.metrics.digit_classifier import load_classifier

        # its random init (overwritten by the weights) must not advance the training run's RNG
        with torch.random.fork_rng(devices=[]):
            net = load_classifier(self.weights_path)
        return net.to(self.device)

    @property
    def resize_rule(self) -> str:
        return CLEAN_RESIZE if self.resize == "clean" else "bilinear, antialiased"

    def protocol(self) -> dict:
        return {"extractor": "gan digit classifier, 64-d penultimate layer", "weights": self.weights_path.name,
                "weights_sha256": self._weights_sha256,
                "input": f"gray (mean of the channels) in [-1, 1], resized to 28x28 ({self.resize_rule}) when needed"}

    @cached_property
    def _weights_sha256(self) -> str:
        return sha256_of(self.weights_path)[:16]

    @torch.no_grad()
    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        if images.dim() != 4 or images.size(1) not in (1, 3):
            raise ValueError(f"the digit classifier takes images of shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
        # 3 channels here are a gray level repeated as RGB (data.channels=3)
        gray = to_digit_size(images.float().mean(1, keepdim=True), self.resize)
        features, logits = self.net.features_and_logits(gray.to(self.device))
        return {"features": features.cpu(), "logits": logits.cpu()}


class DigitPerChannel(DigitFeatures):
    """The digit classifier read on every channel separately (Stacked MNIST): labels (N, C)."""

    name = "digit_classifier_per_channel"
    layers = ("digits",)
    distance_layer = logits_layer = None

    def protocol(self) -> dict:
        return {**super().protocol(), "input": f"each channel on its own, resized to 28x28 ({self.resize_rule}) when needed"}

    @torch.no_grad()
    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        if images.dim() != 4:
            raise ValueError(f"stacked_modes takes images of shape (N, C, H, W), got {tuple(images.shape)}")
        n, channels = images.shape[:2]
        planes = to_digit_size(images.float().reshape(n * channels, 1, *images.shape[2:]), self.resize)
        logits = self.net(planes.to(self.device))
        return {"digits": logits.argmax(1).reshape(n, channels).cpu()}


class RawSamples(Extractor):
    """No network: metrics that read the samples themselves (2D mode coverage)."""

    name = "raw"
    layers = ("samples",)

    def __init__(self, device: str | torch.device = "cpu", resize: str = RESIZE_MODES[0]):
        pass

    def protocol(self) -> dict:
        return {"extractor": "none (the samples themselves)"}

    def __call__(self, samples: Tensor) -> dict[str, Tensor]:
        return {"samples": samples.detach().float().cpu()}


EXTRACTORS: dict[str, type[Extractor]] = {cls.name: cls for cls in (
    InceptionFeatures, DinoV2Features, CLIPFeatures, DigitFeatures, DigitPerChannel, RawSamples)}
#: extractors whose features distance metrics (FID, KID, PRC, density/coverage) can read
DISTANCE_EXTRACTORS = tuple(name for name, cls in EXTRACTORS.items() if cls.distance_layer)
