"""A zero-centred gradient penalty on real samples (R1, Mescheder et al. 2018) written from scratch, with an optional
logit drift term (Karras et al. 2018's epsilon penalty, which keeps D's scores near 0).

    loss = gamma / 2 * E_real[ ||grad_x D(x)||^2 ]  +  drift * E_real[ D(x)^2 ]

The framework calls it in every discriminator step as ``penalty(critic, real, fake, real_logits, fake_logits)`` and
adds the returned ``loss`` to D's loss before its one backward pass; the other terms are logged as ``train/d/<name>``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from gan.losses import Penalty
from gan.utils.errors import ConfigError


class RealGradientPenalty(Penalty):
    # the module marks the real batch requires_grad before D's forward pass, so the gradient below reuses that pass
    input_gradients = ("real",)
    # it differentiates D's input gradient (a double backward): it bounds D's slope
    penalizes_input_gradients = True

    def __init__(self, gamma: float = 1.0, drift: float = 0.0):
        super().__init__()  # an nn.Module: before any attribute is set
        if float(gamma) < 0 or float(drift) < 0:
            raise ConfigError(f"RealGradientPenalty: gamma and drift must be >= 0, got gamma={gamma}, drift={drift}")
        self.gamma, self.drift = float(gamma), float(drift)

    def forward(self, critic, real: Tensor, fake: Tensor, real_logits: Tensor | None = None,
                fake_logits: Tensor | None = None) -> dict[str, Tensor]:
        if real_logits is None or not real.requires_grad:  # called on its own (a test, a script): its own pass
            real = real.detach().requires_grad_(True)
            real_logits = critic(real)
        # create_graph: the penalty's own gradient trains D (under fp16 autocast see gan.losses.penalties, whose
        # squared_gradient_norms runs this in fp32)
        (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
        r1 = grad.flatten(1).pow(2).sum(dim=1).mean()
        drift = real_logits.float().pow(2).mean()
        return {"real_grad_sq": r1, "logit_drift": drift, "loss": 0.5 * self.gamma * r1 + self.drift * drift}

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, drift={self.drift}"
