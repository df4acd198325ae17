"""Feature extractors the metrics share. Each maps a batch of samples (images float in [-1, 1]) to named
feature layers and describes itself in ``protocol()``, which goes into every report and cache key.

The Inception protocol is torch-fidelity's: images are quantised to uint8 exactly as a PNG writer does,
grayscale is repeated to RGB, then torch-fidelity's ``inception-v3-compat`` resizes to 299x299 with its
TF1-style bilinear interpolation (no antialiasing: torchmetrics >= 1.8 antialiases by default, which shifts
FID). The same numbers therefore come out of ``fidelity --gpu 0 --fid --input1 fakes/ --input2 reals/``.
"""
from __future__ import annotations

import hashlib
import os
import socket
from functools import cached_property
from pathlib import Path

import torch
from torch import Tensor
from torch.nn import functional as F

INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
INCEPTION_FILE = INCEPTION_URL.rsplit("/", 1)[-1]
INCEPTION_RESIZE = "torch-fidelity TF1-style bilinear to 299x299, no antialias (== torchmetrics antialias=False)"
#: how long to wait for GitHub before declaring the machine offline
CONNECT_TIMEOUT_S = 3.0


class MetricsUnavailableError(RuntimeError):
    pass


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


def resolve_inception_weights(path: str | None) -> str | None:
    """The weights file to load, None when torch-fidelity may download it; raises when neither works.

    Called before training or evaluation starts, so a missing file never surfaces hours later.
    """
    if path:
        if not Path(path).is_file():
            raise MetricsUnavailableError(f"metrics.inception_weights={path} is not a file; expected torch-fidelity's {INCEPTION_FILE}")
        return str(path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    if cached.is_file():
        return str(cached)
    if not can_reach():
        raise MetricsUnavailableError(
            f"Inception metrics need {INCEPTION_FILE}: it is not in the torch hub cache ({cached.parent}) and "
            f"github.com is unreachable; download {INCEPTION_URL} elsewhere and pass metrics.inception_weights=/path/to/it"
        )
    return None


class Extractor:
    """Named feature layers of a batch; the network, if any, is built on first use (``net``)."""

    name: str
    layers: tuple[str, ...]
    device = torch.device("cpu")

    def to(self, device: str | torch.device) -> "Extractor":
        self.device = torch.device(device)
        if "net" in self.__dict__:  # already built
            self.net.to(self.device)
        return self


class InceptionFeatures(Extractor):
    """torch-fidelity's Inception-v3: the 2048-d pool features (FID, KID, PRC) and unbiased logits (IS)."""

    name = "inception"
    layers = ("2048", "logits_unbiased")

    def __init__(self, weights: str | None = None, device: str | torch.device = "cpu"):
        self.weights_path = resolve_inception_weights(weights)
        self.device = torch.device(device)

    @cached_property
    def net(self):
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        # its random init (overwritten by the weights) must not advance the training run's RNG
        with torch.random.fork_rng(devices=[]):
            net = FeatureExtractorInceptionV3("inception-v3-compat", list(self.layers), feature_extractor_weights_path=self.weights_path)
        return net.to(self.device)

    @cached_property
    def _protocol(self) -> dict:
        weights = self.weights_path or INCEPTION_FILE
        return {
            "extractor": "torch-fidelity inception-v3-compat",
            "weights": Path(weights).name,
            # the standard file is named by its hash; any other file is identified by its content
            "weights_sha256": sha256_of(weights)[:16] if self.weights_path and Path(weights).name != INCEPTION_FILE else None,
            "input": "uint8 RGB (grayscale repeated), rounded like PNG",
            "resize": INCEPTION_RESIZE,
        }

    def protocol(self) -> dict:
        return dict(self._protocol)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        if images.dim() != 4 or images.size(1) not in (1, 3):
            raise ValueError(f"Inception metrics take images of shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
        pixels = to_uint8(images)
        if pixels.size(1) == 1:
            pixels = pixels.repeat(1, 3, 1, 1)
        outputs = self.net(pixels.to(self.device))
        return {layer: value.cpu() for layer, value in zip(self.layers, outputs)}


def to_digit_size(images: Tensor) -> Tensor:
    """The classifier's 28x28, for digit data generated at 32 or 64 pixels."""
    if tuple(images.shape[2:]) == (28, 28):
        return images
    return F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False, antialias=True)


class DigitFeatures(Extractor):
    """The shipped digit classifier: 64-d penultimate features (fid_digits) and logits."""

    name = "digit_classifier"
    layers = ("features", "logits")

    def __init__(self, weights: str | None = None, device: str | torch.device = "cpu"):
        from gan.metrics.digit_classifier import WEIGHTS_PATH

        self.weights_path = Path(weights) if weights else WEIGHTS_PATH
        self.device = torch.device(device)

    @cached_property
    def net(self):
        from gan.metrics.digit_classifier import load_classifier

        # its random init (overwritten by the weights) must not advance the training run's RNG
        with torch.random.fork_rng(devices=[]):
            net = load_classifier(self.weights_path)
        return net.to(self.device)

    def protocol(self) -> dict:
        return {"extractor": "gan digit classifier, 64-d penultimate layer", "weights": self.weights_path.name,
                "weights_sha256": self._weights_sha256,
                "input": "gray (mean of the channels) in [-1, 1], resized to 28x28 (bilinear, antialiased) when needed"}

    @cached_property
    def _weights_sha256(self) -> str:
        return sha256_of(self.weights_path)[:16]

    @torch.no_grad()
    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        if images.dim() != 4 or images.size(1) not in (1, 3):
            raise ValueError(f"the digit classifier takes images of shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
        # 3 channels here are a gray level repeated as RGB (data.channels=3)
        features, logits = self.net.features_and_logits(to_digit_size(images.float().mean(1, keepdim=True)).to(self.device))
        return {"features": features.cpu(), "logits": logits.cpu()}


class DigitPerChannel(DigitFeatures):
    """The digit classifier read on every channel separately (Stacked MNIST): labels (N, C)."""

    name = "digit_classifier_per_channel"
    layers = ("digits",)

    def protocol(self) -> dict:
        return {**super().protocol(), "input": "each channel on its own, resized to 28x28 (bilinear, antialiased) when needed"}

    @torch.no_grad()
    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        if images.dim() != 4:
            raise ValueError(f"stacked_modes takes images of shape (N, C, H, W), got {tuple(images.shape)}")
        n, channels = images.shape[:2]
        planes = to_digit_size(images.float().reshape(n * channels, 1, *images.shape[2:]))
        logits = self.net(planes.to(self.device))
        return {"digits": logits.argmax(1).reshape(n, channels).cpu()}


class RawSamples(Extractor):
    """No network: metrics that read the samples themselves (2D mode coverage)."""

    name = "raw"
    layers = ("samples",)

    def __init__(self, device: str | torch.device = "cpu"):
        pass

    def protocol(self) -> dict:
        return {"extractor": "none (the samples themselves)"}

    def __call__(self, samples: Tensor) -> dict[str, Tensor]:
        return {"samples": samples.detach().float().cpu()}
