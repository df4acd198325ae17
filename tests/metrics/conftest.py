"""Fixtures for the metric tests: randomly initialised Inception, DINOv2 and CLIP networks saved in the
formats their real weights come in, and tiny image folders, so everything runs offline."""
from __future__ import annotations

import warnings
from pathlib import Path
from unittest import mock

import pytest
import torch
from torch import nn

from gan.data.base import GANDataModule
from gan.visualize import save_image_grid


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory) -> Path:
    """A state dict for torch-fidelity's Inception-v3, random but seeded, with fan-in init so the pool
    features neither vanish nor explode through the 90-odd layers."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Untrained(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None  # keep the random init instead of the (absent) download

    torch.manual_seed(0)
    with mock.patch("torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url", return_value={}):
        net = Untrained("inception-v3-compat", ["2048"])
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def dinov2_weights(tmp_path_factory) -> Path:
    """A ViT-S/14 state dict with the official parameter names (as dinov2_vits14_pretrain.pth), random."""
    from gan.metrics.dinov2 import DinoVisionTransformer

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("dinov2") / "random-dinov2-vits14.pth"
    torch.save(DinoVisionTransformer("vit-s-14").state_dict(), path)
    return path


@pytest.fixture(scope="session")
def clip_weights(tmp_path_factory) -> Path:
    """A TorchScript archive laid out like OpenAI's CLIP files (visual.* and text_projection), random and
    tiny: torch-fidelity reads the architecture (here a 2-layer ViT on 64 px, patch 32) from the weights."""
    from torch_fidelity.feature_extractor_clip import CLIPVisual

    class Archive(nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = CLIPVisual(embed_dim=32, image_resolution=64, vision_layers=2, vision_width=64,
                                     vision_patch_size=32).visual
            self.text_projection = nn.Parameter(torch.randn(64, 32))

        def forward(self, x):  # every parameter used, so tracing keeps them all
            return self.visual(x) + 0 * self.text_projection.sum()

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("clip") / "random-clip.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, but it is CLIP's format
        torch.jit.trace(Archive().eval(), torch.randn(1, 3, 64, 64)).save(str(path))
    return path


class Recording:
    """Wraps an extractor and keeps what it returned."""

    def __init__(self, inner):
        self.inner, self.outputs = inner, []

    def __call__(self, batch):
        self.outputs.append(self.inner(batch))
        return self.outputs[-1]

    def __getattr__(self, name):
        return getattr(self.inner, name)


class TensorData(GANDataModule):
    """A data module over a fixed tensor of images (the 'real' side of a comparison)."""

    def __init__(self, images: torch.Tensor, name: str = "tensor_data", labels: torch.Tensor | None = None,
                 split: str | None = None):
        super().__init__(tuple(images.shape[1:]), num_classes=None if labels is None else int(labels.max()) + 1)
        labels = torch.full((len(images),), -1) if labels is None else labels
        self.train_set = torch.utils.data.TensorDataset(images, labels)
        self._name = name
        if split is not None:
            self.split = split

    @property
    def name(self) -> str:
        return self._name


def write_folder(images: torch.Tensor, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        save_image_grid(image.unsqueeze(0), folder / f"{index:04d}.png", nrow=1)
    return folder


def random_images(n: int, channels: int = 3, size: int = 16, seed: int = 0, smooth: bool = False) -> torch.Tensor:
    """Images in [-1, 1] exactly representable as uint8 (so PNG round trips are lossless)."""
    rng = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (n, channels, size, size), generator=rng).float()
    if smooth:
        pixels = torch.nn.functional.avg_pool2d(pixels, 3, 1, 1).round()
    return pixels / 127.5 - 1
