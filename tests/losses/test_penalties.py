"""The gradient penalty against a straightforward per-sample implementation, and weight clipping."""
import pytest
import torch
from torch import nn

from gan.losses import GradientPenalty, LeCamPenalty, R1Penalty, R1R2Penalty, clip_weights
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


@pytest.mark.parametrize("center, expected", [(0.0, 25.0), (1.0, 16.0), (2.0, 9.0)])
def test_the_penalty_s_center_is_the_norm_it_pulls_towards(center, expected):
    # a zero-centred GP (center=0) silently became WGAN-GP's 1-centred one when the center was ignored (a mutation)
    critic = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 0.0, 4.0]]))  # ||w|| = 5 everywhere: (5 - center)^2
    terms = GradientPenalty(weight=1.0, center=center)(critic, torch.randn(7, 3), torch.randn(7, 3))
    assert terms["gp"].item() == pytest.approx(expected)


def test_a_lazy_gradient_penalty_is_scaled_by_its_interval():
    """Applied every k-th D step, it is k times the per-step weight (StyleGAN2's lazy regularization), as R1's."""
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    terms = GradientPenalty(weight=10.0, interval=4)(critic, torch.randn(5, 4), torch.randn(5, 4))
    assert terms["loss"].item() == pytest.approx(40.0 * terms["gp"].item(), rel=1e-9)


def test_clip_weights_bounds_every_parameter():
    critic = DCGANDiscriminator((1, 28, 28), width=4)
    with torch.no_grad():
        for p in critic.parameters():
            p.normal_(0, 1)
    clip_weights(critic, 0.01)
    assert max(p.abs().max().item() for p in critic.parameters()) <= 0.01


# ------------------------------------------------------------------------------------- mixed precision
class CountingCritic(nn.Module):
    """A small MLP critic that counts its forward passes."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(6, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.net(x).squeeze(1)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_input_gradients_reuse_the_forward_pass_under_bf16_not_fp16(dtype):
    """Under bf16 autocast (fp32's exponent range) R1/R2 differentiate the loss's own forward pass, at bf16
    accuracy; under fp16 (whose input gradients underflow) they run their own fp32 pass, equal to fp32's."""
    from gan.losses.penalties import squared_gradient_norms_of

    critic = CountingCritic()
    torch.manual_seed(1)
    n = 256  # enough samples that the one in ~16 whose norm moves far (below) barely moves the mean
    real, fake = torch.randn(n, 6), torch.randn(n, 6)
    reference = [torch.autograd.functional.jacobian(lambda x: critic(x).sum(), points).pow(2).sum(1)
                 for points in (real, fake)]
    real, fake = real.clone().requires_grad_(True), fake.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=dtype):
        logits = critic(torch.cat([real, fake]))
        critic.calls = 0
        norms = squared_gradient_norms_of(critic, [(real, logits[:n]), (fake, logits[n:])])
    assert all(n.dtype == torch.float32 for n in norms)
    if dtype == torch.bfloat16:
        assert critic.calls == 0  # the loss's pass was differentiated
        for got, expected in zip(norms, reference):
            # bf16 has 8 significant bits; a leaky-ReLU input near 0 may change sign (one sample's norm moves
            # far), so the penalty, a mean over samples, is compared
            torch.testing.assert_close(got.mean(), expected.mean(), rtol=3e-2, atol=0)
            assert (got - expected).abs().median() < 2e-2 * expected.abs().median()
    else:
        assert critic.calls == 2  # one fp32 pass per set of points
        for got, expected in zip(norms, reference):
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("make,message", [
    # a negative GP weight rewards steep critics; wgan_gp trained on with it, silently
    (lambda: GradientPenalty(weight=-10), "GradientPenalty weight must be >= 0, got -10"),
    (lambda: R1Penalty(gamma=-1), "R1Penalty gamma must be >= 0, got -1"),
    (lambda: R1R2Penalty(gamma=-1), "R1R2Penalty gamma must be >= 0, got -1"),
    (lambda: LeCamPenalty(weight=-0.3), "LeCamPenalty weight must be >= 0, got -0.3"),
])
def test_negative_penalty_weights_are_refused(make, message):
    from gan.utils.errors import ConfigError

    with pytest.raises(ConfigError, match=f"^{message}$"):
        make()
    assert GradientPenalty(weight=0).weight == 0 and R1Penalty(gamma=0).gamma == 0
