"""Regularizers of the discriminator: the WGAN-GP gradient penalty, R1, R1 + R2, and WGAN weight clipping.

Every penalty is a small ``nn.Module`` (state such as an anchor lives in buffers, so checkpoints carry it)
called in the discriminator step as ``penalty(critic, real, fake, real_logits, fake_logits)`` and returning
its named terms, ``loss`` being the weighted value the module adds to the adversarial loss. The module then
runs ONE backward: that single backward is what DDP all-reduces, whereas gradients taken with
``autograd.grad`` alone are never synchronised across ranks.

``critic`` maps samples to logits exactly as the step's loss saw them (labels, instance noise and
augmentation included), ``real``/``fake`` are the un-augmented inputs, and ``real_logits``/``fake_logits``
the step's own logits of them. A penalty that differentiates D at its inputs lists them in
``input_gradients``; the module then marks those inputs ``requires_grad`` before its forward, so the penalty
reuses the loss's forward pass instead of running another (as R3GAN and StyleGAN2 do), in that pass's
precision: under bf16 autocast (fp32's exponent range) the input gradients are bf16 products like the loss's.
Called without logits, or under fp16 autocast (whose input gradients underflow), the penalty runs its own fp32
pass.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from gan.losses.adversarial import methods_beyond
from gan.utils.errors import ConfigError
from gan.utils.targets import class_path

Critic = Callable[[Tensor], Tensor]


def interpolate(real: Tensor, fake: Tensor) -> Tensor:
    """Random points on straight lines between real and fake samples, one weight per sample."""
    alpha = torch.rand((real.size(0),) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
    return alpha * real + (1.0 - alpha) * fake


def input_gradients(critic: Critic, points: Tensor) -> Tensor:
    """d critic(x) / dx per sample (``create_graph=True`` so a loss on it trains D), computed in fp32 with
    autocast off: fp16 input gradients underflow, and the loss scaler covers only the final backward."""
    if not torch.is_autocast_enabled(points.device.type):
        points = points.detach().requires_grad_(True)
        return torch.autograd.grad(critic(points).sum(), points, create_graph=True)[0]
    points = points.float().detach().requires_grad_(True)
    with torch.autocast(points.device.type, enabled=False):
        return torch.autograd.grad(critic(points).sum(), points, create_graph=True)[0]


def fp16_autocast_enabled(device_type: str) -> bool:
    """Whether autocast runs fp16 here: its input gradients (~1e-8 for a small critic) underflow, which bf16,
    with fp32's exponent range, does not."""
    return torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type) == torch.float16


def squared_gradient_norms(critic: Critic, points: Tensor, logits: Tensor | None = None) -> Tensor:
    """||grad_x D(x)||^2 per sample, summed over the non-batch dims. With ``logits`` = critic(points) already
    computed (``points`` requiring grad) the gradient reuses that forward pass."""
    return squared_gradient_norms_of(critic, [(points, logits)])[0]


def squared_gradient_norms_of(critic: Critic, pairs: Sequence[tuple[Tensor, Tensor | None]]) -> list[Tensor]:
    """``squared_gradient_norms`` for several ``(points, logits)`` pairs. The pairs whose logits can be reused
    share ONE backward pass: the gradient of the sum of their logits with respect to all their points at once,
    which traverses D's graph once when real and fake samples went through D together. That needs each set's
    logits to depend on its own points only (separate passes, or a discriminator that treats samples
    independently: ``Discriminator.samples_independent``). The others get their own fp32 pass."""
    fp16 = bool(pairs) and fp16_autocast_enabled(pairs[0][0].device.type)
    reusable = [i for i, (points, logits) in enumerate(pairs)
                if logits is not None and points.requires_grad and not fp16]
    grads: list[Tensor | None] = [None] * len(pairs)
    if reusable:
        total = sum(pairs[i][1].sum() for i in reusable)
        shared = torch.autograd.grad(total, [pairs[i][0] for i in reusable], create_graph=True)
        for i, grad in zip(reusable, shared):
            grads[i] = grad
    for i, (points, _) in enumerate(pairs):
        if grads[i] is None:
            grads[i] = input_gradients(critic, points)
    return [grad.flatten(1).pow(2).sum(dim=1) for grad in grads]


def gradient_norm_penalty(critic: Critic, points: Tensor, center: float = 1.0) -> Tensor:
    """Mean over samples of (||grad_x D(x)||_2 - center)^2, the norm taken over all non-batch dims."""
    norms = input_gradients(critic, points).flatten(1).norm(2, dim=1)
    return (norms - center).pow(2).mean()


def check_interval(interval: int) -> int:
    if int(interval) < 1:
        raise ConfigError(f"penalty interval must be a positive integer (discriminator steps), got {interval}")
    return int(interval)


class Penalty(nn.Module):
    """A discriminator regularizer (see the module docstring for the call). One of one's own
    (``+model.penalties.mine._target_=...``) calls ``super().__init__()`` and defines ``forward``; the module checks
    that when it is built (:func:`check_penalty_class`) and its terms the first time it applies it."""

    #: which of the step's inputs ("real", "fake") must require grad before the loss's forward pass
    input_gradients: tuple[str, ...] = ()
    #: applied every ``interval`` discriminator steps (lazy regularization), scaled by ``interval``
    interval: int = 1
    #: whether it differentiates D's gradient with respect to its inputs (a double backward, which compiled graphs
    #: lack; it bounds D's slope, the constraint a Wasserstein critic needs)
    penalizes_input_gradients: bool = False

    def forward(self, critic: Critic, real: Tensor, fake: Tensor, real_logits: Tensor | None = None,
                fake_logits: Tensor | None = None) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


def check_penalty_class(penalty: Penalty, key: str) -> None:
    """A penalty of one's own (``+model.penalties.mine._target_=mygan.MyPenalty``, ``key`` its config key) that the
    module could not call: its ``__init__`` skipped ``super().__init__()`` (an AttributeError about ``_modules`` from deep
    inside torch, an audit), or it defines no ``forward`` (a bare NotImplementedError at the first step). Static."""
    name = f"{key}._target_={class_path(penalty)}"
    if "_modules" not in vars(penalty):
        raise ConfigError(f"{name}: its __init__ does not call super().__init__(); a penalty is a torch nn.Module, whose "
                          "__init__ must call super().__init__() before it sets any attribute")
    if type(penalty).forward is Penalty.forward:
        found = methods_beyond(type(penalty), Penalty)
        raise ConfigError(f"{name} defines no forward{' (it defines ' + ', '.join(found) + ')' if found else ''}: a "
                          "penalty of one's own subclasses gan.losses.Penalty and defines forward(critic, real, fake, "
                          "real_logits=None, fake_logits=None), returning a dict of terms with its weighted value, a "
                          "scalar tensor, under 'loss'")


def penalty_without_gradient(loss: Tensor | float) -> bool:
    """Whether a penalty's ``loss`` has no gradient while it is not 0: a value detached (``.detach()``, ``.item()``,
    computed under no_grad) that adding to D's loss changes nothing, so the penalty silently does nothing. A detached
    0 is no alarm: a penalty of one's own may return it on the steps it skips. Reads the value (a device sync), so the
    module asks once per penalty."""
    if not isinstance(loss, Tensor):  # a number: 0 on a step it skips (a warm-up), else a value without a gradient
        return float(loss) != 0
    return not loss.requires_grad and bool(loss.detach().float().ne(0).any())


class GradientPenalty(Penalty):
    """Gulrajani et al. 2017: weight * E[(||grad D(x_hat)||_2 - 1)^2] at per-sample interpolates x_hat.

    ``interval``: lazy regularization (Karras et al. 2020): the module applies the penalty every ``interval``
    discriminator steps, scaled by ``interval`` so its average strength is unchanged.
    """

    penalizes_input_gradients = True

    def __init__(self, weight: float = 10.0, center: float = 1.0, interval: int = 1):
        super().__init__()
        self.weight, self.center, self.interval = float(weight), float(center), check_interval(interval)
        if self.weight < 0:  # a negative weight rewards steep critics: it trained on, silently
            raise ConfigError(f"GradientPenalty weight must be >= 0, got {weight}")

    def forward(self, critic, real, fake, real_logits=None, fake_logits=None):
        # no detach here: input_gradients differentiates at a detached copy of the points
        penalty = gradient_norm_penalty(critic, interpolate(real, fake), self.center)
        return {"gp": penalty, "loss": self.weight * self.interval * penalty}

    def extra_repr(self) -> str:
        return f"weight={self.weight}, center={self.center}, interval={self.interval}"


class R1Penalty(Penalty):
    """Mescheder et al. 2018, eq. 9: (gamma / 2) E_real[||grad D(x)||^2], on real samples only.

    ``interval``: lazy R1 (Karras et al. 2020, StyleGAN2 section 3.1): applied every ``interval``
    discriminator steps (the module's counter), scaled by ``interval``.
    """

    input_gradients = ("real",)
    penalizes_input_gradients = True

    def __init__(self, gamma: float = 10.0, interval: int = 1):
        super().__init__()
        self.gamma, self.interval = float(gamma), check_interval(interval)
        if self.gamma < 0:
            raise ConfigError(f"R1Penalty gamma must be >= 0, got {gamma}")

    def forward(self, critic, real, fake, real_logits=None, fake_logits=None):
        penalty = squared_gradient_norms(critic, real, real_logits).mean()
        return {"r1": penalty, "loss": 0.5 * self.gamma * self.interval * penalty}

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, interval={self.interval}"


class R1R2Penalty(Penalty):
    """Huang et al. 2024 (R3GAN), eq. 5-6: (gamma / 2) E[||grad D(x_real)||^2 + ||grad D(x_fake)||^2].

    Zero-centred penalties on both real (R1) and fake (R2) samples, at every discriminator step: the paper
    reports that R1 alone diverges and that lazy R1/R2 fails on Stacked MNIST and the 2D toys, so there is
    no ``interval`` here. ``gamma`` is usually scheduled (model.schedules).
    """

    input_gradients = ("real", "fake")
    penalizes_input_gradients = True

    def __init__(self, gamma: float = 1.0):
        super().__init__()
        self.gamma = float(gamma)
        if self.gamma < 0:
            raise ConfigError(f"R1R2Penalty gamma must be >= 0, got {gamma}")

    def forward(self, critic, real, fake, real_logits=None, fake_logits=None):
        # one backward pass through D for both gradients (see squared_gradient_norms_of)
        r1, r2 = (norms.mean() for norms in squared_gradient_norms_of(critic, [(real, real_logits), (fake, fake_logits)]))
        return {"r1": r1, "r2": r2, "loss": 0.5 * self.gamma * (r1 + r2)}

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"


@torch.no_grad()
def clip_weights(module: nn.Module, clip_value: float) -> None:
    """Arjovsky et al. 2017: clamp every parameter of the critic to [-c, c] after each critic update."""
    for param in module.parameters():
        param.clamp_(-clip_value, clip_value)


class LeCamPenalty(Penalty):
    """Tseng et al. 2021 (LeCam regularization), eq. 3: weight * (E[(D(x_real) - alpha_fake)^2]
    + E[(D(G(z)) - alpha_real)^2]), with alpha_real / alpha_fake exponential moving averages of D's mean
    output on real / fake samples (decay 0.99, the authors' StyleGAN2 code's; their BigGAN code's is 0.9).

    It keeps D's predictions on reals close to its past predictions on fakes and vice versa, bounding the
    gap a memorizing discriminator can open on small data. The anchors are updated with the step's logits
    before the penalty is computed (as the authors' code does) and start at the first step's means; they are
    buffers, so checkpoints carry them. ``one_sided=True`` uses the authors' code's variant,
    relu(D(x_real) - alpha_fake)^2 + relu(alpha_real - D(G(z)))^2, which only penalizes outputs beyond the
    opposite anchor (their BigGAN code's form, which also starts the penalty after 1,000 iterations). Weight 0.3 is
    their BigGAN CIFAR-10 script's. No host sync.
    """

    def __init__(self, weight: float = 0.3, decay: float = 0.99, one_sided: bool = False):
        super().__init__()
        if float(weight) < 0:
            raise ConfigError(f"LeCamPenalty weight must be >= 0, got {weight}")
        if not 0.0 <= float(decay) < 1.0:
            raise ConfigError(f"LeCamPenalty decay must be in [0, 1), got {decay}")
        self.weight, self.decay, self.one_sided = float(weight), float(decay), bool(one_sided)
        self.register_buffer("anchor_real", torch.tensor(0.0))
        self.register_buffer("anchor_fake", torch.tensor(0.0))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def update_anchors(self, real_logits: Tensor, fake_logits: Tensor) -> None:
        """EMA of the batch means; the first call copies them (a tensor op, so no host sync)."""
        decay = torch.where(self.initialized, self.decay, 0.0)
        for anchor, logits in ((self.anchor_real, real_logits), (self.anchor_fake, fake_logits)):
            anchor.copy_(decay * anchor + (1.0 - decay) * logits.detach().float().mean())
        self.initialized.fill_(True)

    def regularizer(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """The bracket of eq. 3 for the current anchors."""
        real_gap = real_logits - self.anchor_fake
        fake_gap = self.anchor_real - fake_logits
        if self.one_sided:
            real_gap, fake_gap = real_gap.relu(), fake_gap.relu()
        return real_gap.pow(2).mean() + fake_gap.pow(2).mean()

    def forward(self, critic, real, fake, real_logits=None, fake_logits=None):
        real_logits = critic(real) if real_logits is None else real_logits
        fake_logits = critic(fake) if fake_logits is None else fake_logits
        self.update_anchors(real_logits, fake_logits)
        penalty = self.regularizer(real_logits, fake_logits)
        return {"lecam": penalty, "loss": self.weight * penalty}

    def extra_repr(self) -> str:
        return f"weight={self.weight}, decay={self.decay}, one_sided={self.one_sided}"
