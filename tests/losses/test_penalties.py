"""The gradient penalty against a straightforward per-sample implementation, and weight clipping."""
import pytest
import torch
from torch import nn

from gan.losses import GradientPenalty, clip_weights
from gan.nets import DCGANDiscriminator


def reference_gradient_penalty(critic, real, fake, alpha):
    """One sample at a time: x_i = a_i r_i + (1 - a_i) f_i, ||dD(x_i)/dx_i||_2 over all its entries."""
    terms = []
    for i in range(real.size(0)):
        x = (alpha[i] * real[i] + (1 - alpha[i]) * fake[i]).unsqueeze(0).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x).sum(), x)
        terms.append((grad.pow(2).sum().sqrt() - 1.0) ** 2)
    return torch.stack(terms).mean()


def test_gradient_penalty_matches_per_sample_reference():
    torch.manual_seed(0)
    critic = DCGANDiscriminator((3, 16, 16), width=4, norm="layer").double()
    real, fake = torch.randn(6, 3, 16, 16).double(), torch.randn(6, 3, 16, 16).double()
    torch.manual_seed(1)
    terms = GradientPenalty(weight=10.0)(critic, real, fake)
    torch.manual_seed(1)
    alpha = torch.rand(6, 1, 1, 1, dtype=torch.double)  # the draw the penalty makes: one weight per sample
    expected = reference_gradient_penalty(critic, real, fake, alpha)
    assert terms["gp"].item() == pytest.approx(expected.item(), rel=1e-9)
    assert terms["loss"].item() == pytest.approx(10.0 * expected.item(), rel=1e-9)


def test_interpolation_weight_is_per_sample_not_per_batch():
    """With a linear critic D(x) = <w, x> the gradient is w everywhere; interpolates reveal alpha."""
    from gan.losses.penalties import interpolate

    torch.manual_seed(0)
    real, fake = torch.ones(64, 2, 3, 3), torch.zeros(64, 2, 3, 3)
    points = interpolate(real, fake)
    per_sample = points.flatten(1)
    assert torch.allclose(per_sample, per_sample[:, :1].expand_as(per_sample))  # one weight within a sample
    assert per_sample[:, 0].std() > 0.1  # different weights across samples


def test_penalty_is_differentiable_wrt_critic_parameters():
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    terms = GradientPenalty()(critic, torch.randn(5, 4), torch.randn(5, 4))
    terms["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in critic.parameters() if p.dim() > 1)


def test_linear_critic_penalty_is_exact():
    critic = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 0.0, 4.0]]))  # ||w|| = 5 -> (5 - 1)^2 = 16
    assert GradientPenalty(weight=1.0)(critic, torch.randn(7, 3), torch.randn(7, 3))["gp"].item() == pytest.approx(16.0)


def test_clip_weights_bounds_every_parameter():
    critic = DCGANDiscriminator((1, 28, 28), width=4)
    with torch.no_grad():
        for p in critic.parameters():
            p.normal_(0, 1)
    clip_weights(critic, 0.01)
    assert max(p.abs().max().item() for p in critic.parameters()) <= 0.01
