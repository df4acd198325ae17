"""The DINOv2 ViT/14 backbones (Oquab et al. 2023) for ``fd_dinov2``, inference only, without torch.hub.

torch-fidelity 0.4's DINOv2 extractor builds its network with ``torch.hub.load("facebookresearch/dinov2")``,
which fetches the model code from GitHub and refuses a local weights file, so it cannot run offline. This
module rebuilds the same network (the hub's ``dinov2_vit{s,b,l}14``: 518 px position grid, LayerScale,
bicubic position interpolation with the 0.1 offset, final LayerNorm, the CLS token as the feature) with
the same parameter names, so the official ``dinov2_vit*14_pretrain.pth`` files load with ``strict=True``.
Condensed from facebookresearch/dinov2 (Apache License 2.0): dinov2/models/vision_transformer.py and
dinov2/layers/{block,attention,mlp,patch_embed,layer_scale}.py. ``benchmarks/metrics_dinov2_check.py``
compares it with a checkout of the official code.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

#: the hub's names -> (embed_dim, depth, heads); ViT-g/14 (SwiGLU feed-forward) is left out
ARCHITECTURES = {"vit-s-14": (384, 12, 6), "vit-b-14": (768, 12, 12), "vit-l-14": (1024, 24, 16)}
PATCH_SIZE = 14
#: the pretraining resolution: the position embeddings form a 37x37 grid, interpolated to other sizes
PRETRAIN_SIZE = 518
WEIGHTS_URL = "https://dl.fbaipublicfiles.com/dinov2/{stem}/{stem}_pretrain.pth"


def weights_file_stem(architecture: str) -> str:
    """The hub's name, e.g. ``dinov2_vits14`` for vit-s-14 (the weights file is ``<stem>_pretrain.pth``)."""
    return "dinov2_vit" + architecture.split("-")[1] + "14"


class LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).unbind(2)
        x = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(x.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.attn, self.ls1 = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads), LayerScale(dim)
        self.norm2, self.mlp, self.ls2 = nn.LayerNorm(dim, eps=1e-6), Mlp(dim, 4 * dim), LayerScale(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=PATCH_SIZE, stride=PATCH_SIZE)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DinoVisionTransformer(nn.Module):
    """(N, 3, H, W) normalised images, H and W multiples of 14 -> (N, embed_dim) normalised CLS tokens."""

    def __init__(self, architecture: str = "vit-s-14", random_init: bool = True):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown DINOv2 architecture {architecture!r}; expected one of {list(ARCHITECTURES)}")
        dim, depth, heads = ARCHITECTURES[architecture]
        grid = PRETRAIN_SIZE // PATCH_SIZE
        self.architecture, self.embed_dim = architecture, dim
        self.patch_embed = PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # training only; kept so the official files load strictly
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        if random_init:
            self._init_like_dinov2()

    def _init_like_dinov2(self) -> None:
        """The official initialisation, so randomly initialised test weights behave like an untrained DINOv2."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def interpolate_pos_encoding(self, tokens: int, width: int, height: int) -> Tensor:
        grid_tokens = self.pos_embed.shape[1] - 1
        if tokens - 1 == grid_tokens and width == height:
            return self.pos_embed
        pos_embed = self.pos_embed.float()
        grid = int(math.sqrt(grid_tokens))
        w0, h0 = width // PATCH_SIZE, height // PATCH_SIZE
        # the official code passes scale factors with a 0.1 offset (a historical fix kept for compatibility):
        # the interpolation kernel uses them, so output size alone would give other numbers
        patch_pos_embed = F.interpolate(pos_embed[:, 1:].reshape(1, grid, grid, -1).permute(0, 3, 1, 2), mode="bicubic",
                                        scale_factor=((w0 + 0.1) / grid, (h0 + 0.1) / grid), antialias=False)
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).reshape(1, -1, pos_embed.shape[-1])
        return torch.cat((pos_embed[:, :1], patch_pos_embed), dim=1).to(self.pos_embed.dtype)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.size(1) != 3 or x.size(2) % PATCH_SIZE or x.size(3) % PATCH_SIZE:
            raise ValueError(f"DINOv2 takes images of shape (N, 3, H, W) with H and W multiples of {PATCH_SIZE}, got {tuple(x.shape)}")
        width, height = x.shape[2:]
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.size(0), -1, -1), x), dim=1)
        x = x + self.interpolate_pos_encoding(x.size(1), width, height)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]


def torch_fidelity_extractor(architecture: str, state_dict: dict[str, Tensor]):
    """torch-fidelity's ``FeatureExtractorDinoV2`` (its uint8 input check, TF1-style bilinear resize to 224,
    ImageNet normalisation, ``dinov2`` feature) around this module's network, built from ``state_dict``."""
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.feature_extractor_dinov2 import FeatureExtractorDinoV2

    class LocalDinoV2(FeatureExtractorDinoV2):
        def __init__(self):
            # the parent's __init__ would call torch.hub.load (GitHub); everything else is the parent's
            FeatureExtractorBase.__init__(self, f"dinov2-{architecture}", ["dinov2"])
            self.feature_extractor_internal_dtype = torch.float32
            with torch.device("meta"):  # no memory, no initialisation: the file's tensors become the parameters
                self.model = DinoVisionTransformer(architecture, random_init=False)
            self.model.load_state_dict(state_dict, assign=True)
            self.requires_grad_(False).eval()

    return LocalDinoV2()
