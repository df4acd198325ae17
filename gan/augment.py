"""Augmentation of what the discriminator sees (``model.augment``), for training on small data.

An :class:`Augment` is applied by :class:`~gan.module.GANModule` to every discriminator input -- reals and
fakes in the discriminator step, fakes in the generator step (and the reals there when the loss compares with
them or feature matching is on) -- after instance noise. It must be
differentiable, since the generator's gradient flows through it, and penalties that differentiate D at its
inputs (R1, R2) take their gradients with respect to the un-augmented samples, through the augmentation,
as R3GAN does. State that changes during training (an adaptive probability) lives in buffers, so it is
saved in checkpoints and a resumed run continues exactly.

Two implementations, chosen by ``_target_`` (``augment=diffaugment`` / ``augment=ada``):

- :class:`DiffAugment` (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"):
  every op of a policy applied to every sample, with fresh random parameters per sample and per call.
- :class:`AdaptiveAugment` (ADA-style, Karras et al. 2020, "Training Generative Adversarial Networks with
  Limited Data"): the same ops, each applied to each sample independently with a probability ``p`` that
  follows the overfitting heuristic r_t = E[sign(D(x_real))] toward a target.

Every random draw uses torch's global generator (seeded by the run, restored on resume).
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan.utils.errors import ConfigError


class Augment(nn.Module):
    """Base class: ``forward(x)`` augments a batch; ``observe`` and ``terms`` are optional hooks."""

    #: whether it adjusts itself from the sign of D's logits on reals (ADA)
    steers_by_real_logit_sign = False

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def observe(self, real_logits: Tensor) -> None:
        """Called after every discriminator step with D's outputs on the (augmented) real batch, measured from the
        loss's decision boundary (``AdversarialLoss.real_margin``: positive means judged real); adaptive
        augmentation (ADA) steers its probability with them. Default: nothing."""

    def terms(self) -> dict[str, Tensor]:
        """Values to log with the discriminator's terms (e.g. ``{"augment_p": p}``). Default: none."""
        return {}


# --------------------------------------------------------------------------------------------- the ops
# Each op maps a batch (N, C, H, W) to an augmented batch of the same shape, differentiably in x, with its
# own random parameters per sample. Magnitudes are DiffAugment's (DiffAugment_pytorch.py of
# mit-han-lab/data-efficient-gans), written for data in [-1, 1].

def _uniform(x: Tensor) -> Tensor:
    """One U(0, 1) draw per sample, shaped to broadcast over (C, H, W)."""
    return torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device)


def brightness(x: Tensor) -> Tensor:
    """Adds U(-0.5, 0.5) to every value of a sample."""
    return x + (_uniform(x) - 0.5)


def saturation(x: Tensor) -> Tensor:
    """Scales each pixel's deviation from its channel mean by U(0, 2) (the identity on 1-channel images)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_uniform(x) * 2) + mean


def contrast(x: Tensor) -> Tensor:
    """Scales each sample's deviation from its mean over (C, H, W) by U(0.5, 1.5)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x) + 0.5) + mean


def _span(size: int, ratio: float) -> int:
    return int(size * ratio + 0.5)


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shifts each sample by up to ``ratio`` of its size in each direction (integers, uniform), filling the
    uncovered border with zeros as DiffAugment does. A gather, so the gradient reaches x."""
    n, _, h, w = x.shape
    sy, sx = _span(h, ratio), _span(w, ratio)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device)
    padded = F.pad(x, [sx, sx, sy, sy]).permute(0, 2, 3, 1)  # (N, H + 2sy, W + 2sx, C)
    rows = torch.arange(h, device=x.device)[None, :, None] + sy + dy  # (N, H, 1)
    cols = torch.arange(w, device=x.device)[None, None, :] + sx + dx  # (N, 1, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zeroes one square of ``ratio`` times the image size per sample, centred uniformly over the image (so
    it may hang over the border, as in DiffAugment)."""
    n, _, h, w = x.shape
    ch, cw = _span(h, ratio), _span(w, ratio)
    top = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device) - ch // 2
    left = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device) - cw // 2
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)  # (N, H, W)
    return x * (~inside).unsqueeze(1).to(x.dtype)


#: DiffAugment's policy names and the ops each stands for, in the order they are applied
POLICY_OPS: dict[str, tuple[str, ...]] = {
    "color": ("brightness", "saturation", "contrast"),
    "translation": ("translation",),
    "cutout": ("cutout",),
}


def parse_policy(policy: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"color,translation,cutout"`` (or a list of names) -> the policy names; empty/None -> no ops."""
    if policy is None:
        return ()
    names = [p.strip() for p in (policy.split(",") if isinstance(policy, str) else policy)]
    names = [p for p in names if p]
    unknown = [p for p in names if p not in POLICY_OPS]
    if unknown:
        raise ConfigError(f"unknown augmentation policy {','.join(unknown)!r}; expected a comma-separated subset of "
                          f"{','.join(POLICY_OPS)}")
    return tuple(names)


def check_image_shape(who: str, sample_shape: Sequence[int] | None) -> None:
    """Augmentations are image ops: vector data (the 2D toys) is a config error, named before training."""
    if sample_shape is not None and len(sample_shape) != 3:
        raise ConfigError(f"{who} augments images [channels, height, width], but the data's sample shape is "
                          f"{list(sample_shape)}; use it with image data or drop it (augment=null)")


class DiffAugment(Augment):
    """Zhao et al. 2020: differentiable augmentation of every discriminator input.

    Args:
        policy: comma-separated policy names, applied in this order: ``color`` (brightness, saturation,
            contrast), ``translation``, ``cutout``. The paper's default for CIFAR-10 and few-shot data is
            ``color,translation,cutout`` (section 4); ``""`` turns it into the identity.
        sample_shape: the data's sample shape (``${data.sample_shape}``), checked so vector data fails before
            training; None skips the check.
        translation_ratio: largest shift, as a fraction of the image size (1/8 in the paper's code).
        cutout_ratio: side of the cut-out square, as a fraction of the image size (1/2 in the paper's code).

    Real and fake batches go through the same ops; each call draws its own random parameters per sample
    (the paper's scheme: D never sees the un-augmented distribution, G is trained through the same ops).
    """

    def __init__(self, policy: str | Sequence[str] | None = "color,translation,cutout",
                 sample_shape: Sequence[int] | None = None, translation_ratio: float = 0.125, cutout_ratio: float = 0.5):
        super().__init__()
        check_image_shape(type(self).__name__, sample_shape)
        for name, ratio in (("translation_ratio", translation_ratio), ("cutout_ratio", cutout_ratio)):
            if not 0.0 <= float(ratio) <= 1.0:
                raise ConfigError(f"{type(self).__name__} {name} must be in [0, 1], got {ratio}")
        self.policy = parse_policy(policy)
        self.translation_ratio, self.cutout_ratio = float(translation_ratio), float(cutout_ratio)
        functions: dict[str, Callable[[Tensor], Tensor]] = {
            "brightness": brightness,
            "saturation": saturation,
            "contrast": contrast,
            "translation": partial(translation, ratio=self.translation_ratio),
            "cutout": partial(cutout, ratio=self.cutout_ratio),
        }
        #: (name, op) in the order they are applied
        self.ops = [(op, functions[op]) for name in self.policy for op in POLICY_OPS[name]]

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ConfigError(f"{type(self).__name__} augments image batches (N, C, H, W), got shape {tuple(x.shape)}")
        for name, op in self.ops:
            x = self.apply(name, op, x)
        return x

    def apply(self, name: str, op: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        """One op on the batch: on every sample here, with probability p per sample in ADA."""
        return op(x)

    def extra_repr(self) -> str:
        return f"policy={','.join(self.policy)!r}, ops={[name for name, _ in self.ops]}"


class AdaptiveAugment(DiffAugment):
    """ADA-style adaptive augmentation (Karras et al. 2020, section 3).

    Each op of ``policy`` is applied to each sample independently with probability ``p`` (so at p = 1 this is
    :class:`DiffAugment`, at p = 0 the identity). ``p`` follows the overfitting heuristic
    r_t = E[sign(D(x_real))], measured on the (augmented) reals of every discriminator step (D's output measured
    from the loss's decision boundary, ``AdversarialLoss.real_margin``: 0.5 for least squares with targets 0 and 1): every
    ``interval`` discriminator steps p moves by sign(r_t - target) * (images seen) / (speed_kimg * 1000),
    clamped to [0, 1]. Paper defaults: target 0.6, an adjustment every 4 minibatches, and a speed at which p
    can go from 0 to 1 in 500k images (section 3, "adaptive discriminator augmentation").

    Differences from StyleGAN2-ADA: the ops are DiffAugment's (translation with zero fill, cutout, colour),
    not ADA's 18-op pipeline with its geometric ops on a reflected canvas; leaking augmentations are kept
    in check only by p staying below 1 (the paper's p < 0.8 safety margin is not enforced). With
    distributed training the sign statistics are summed over ranks, so every rank steers the same p.

    State (buffers, so saved in checkpoints and a resume continues exactly): ``p``, the signs and images
    accumulated since the last adjustment, the discriminator steps observed, and the last r_t. ``observe``
    uses tensor ops only (no host sync).
    """

    #: it steers by the sign of D's logits on reals (gan/utils/config.py warns where the loss makes that sign arbitrary)
    steers_by_real_logit_sign = True

    def __init__(self, policy: str | Sequence[str] | None = "color,translation,cutout",
                 sample_shape: Sequence[int] | None = None, target: float = 0.6, interval: int = 4,
                 speed_kimg: float = 500.0, initial_p: float = 0.0, translation_ratio: float = 0.125,
                 cutout_ratio: float = 0.5):
        super().__init__(policy, sample_shape, translation_ratio, cutout_ratio)
        if not -1.0 <= float(target) <= 1.0:
            raise ConfigError(f"AdaptiveAugment target is a value of E[sign(D(x_real))], in [-1, 1]; got {target}")
        if int(interval) < 1:
            raise ConfigError(f"AdaptiveAugment interval must be a positive integer (discriminator steps), got {interval}")
        if not float(speed_kimg) > 0:
            raise ConfigError(f"AdaptiveAugment speed_kimg must be > 0 (thousands of images for p to go 0 -> 1), got {speed_kimg}")
        if not 0.0 <= float(initial_p) <= 1.0:
            raise ConfigError(f"AdaptiveAugment initial_p must be in [0, 1], got {initial_p}")
        self.target, self.interval, self.speed_kimg = float(target), int(interval), float(speed_kimg)
        self.register_buffer("p", torch.tensor(float(initial_p)))
        self.register_buffer("sign_sum", torch.tensor(0.0))  # sum of sign(D(x_real)) since the last adjustment
        self.register_buffer("images", torch.tensor(0.0))  # real images observed since the last adjustment
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))  # discriminator steps observed
        self.register_buffer("rt", torch.tensor(0.0))  # r_t of the last adjustment, the running one before it (logged)

    def apply(self, name, op, x):
        chosen = torch.rand(x.size(0), 1, 1, 1, device=x.device) < self.p
        return torch.where(chosen, op(x), x)

    @torch.no_grad()
    def observe(self, real_logits: Tensor) -> None:
        # the count filled on the device: torch.tensor(count, device=...) was a blocking copy, a GPU wait every D step
        count = torch.full((), float(real_logits.numel()), device=real_logits.device)
        stats = torch.stack([real_logits.detach().float().sign().sum(), count])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(stats)
        self.sign_sum += stats[0]
        self.images += stats[1]
        self.steps += 1
        # adjust with tensor ops whether or not this step is due, so no value is read back to the host
        due = self.steps % self.interval == 0
        rt = self.sign_sum / self.images.clamp(min=1.0)
        adjusted = (self.p + torch.sign(rt - self.target) * self.images / (self.speed_kimg * 1000.0)).clamp(0.0, 1.0)
        self.p.copy_(torch.where(due, adjusted, self.p))
        # before the first adjustment there is no r_t of an interval yet: the running one of the reals seen so far
        # (a logged 0.0 read as "D neither right nor wrong" for the first interval of every run)
        self.rt.copy_(torch.where(due | (self.steps < self.interval), rt, self.rt))
        self.sign_sum.copy_(torch.where(due, torch.zeros_like(self.sign_sum), self.sign_sum))
        self.images.copy_(torch.where(due, torch.zeros_like(self.images), self.images))

    def terms(self) -> dict[str, Tensor]:
        # copies: the buffers change in place at the next step, a logged value must not
        return {"augment_p": self.p.clone(), "augment_rt": self.rt.clone()}

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, target={self.target}, interval={self.interval}, "
                f"speed_kimg={self.speed_kimg}")


