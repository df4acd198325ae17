"""Each loss against its formula written out with math.log/exp on hand-picked logits."""
import math

import pytest
import torch

from gan.losses import HingeLoss, LeastSquaresLoss, MinimaxLoss, NonSaturatingLoss, WassersteinLoss

REAL = [0.0, 2.0, -1.5]
FAKE = [-1.0, 1.0, 0.5]


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def mean(values):
    values = list(values)
    return sum(values) / len(values)


def d_and_g(loss):
    real, fake = torch.tensor(REAL), torch.tensor(FAKE)
    return loss.discriminator_loss(real, fake)["loss"].item(), loss.generator_loss(fake)["loss"].item()


def test_minimax():
    d, g = d_and_g(MinimaxLoss())
    assert d == pytest.approx(mean(-math.log(sigmoid(r)) for r in REAL) + mean(-math.log(1 - sigmoid(f)) for f in FAKE), rel=1e-6)
    assert g == pytest.approx(mean(math.log(1 - sigmoid(f)) for f in FAKE), rel=1e-6)


def test_non_saturating():
    d, g = d_and_g(NonSaturatingLoss())
    assert d == pytest.approx(d_and_g(MinimaxLoss())[0], rel=1e-7)
    assert g == pytest.approx(mean(-math.log(sigmoid(f)) for f in FAKE), rel=1e-6)


def test_wasserstein():
    d, g = d_and_g(WassersteinLoss())
    assert d == pytest.approx(mean(FAKE) - mean(REAL), rel=1e-6)
    assert g == pytest.approx(-mean(FAKE), rel=1e-6)


@pytest.mark.parametrize("a,b,c", [(0.0, 1.0, 1.0), (-1.0, 1.0, 0.0)])
def test_least_squares(a, b, c):
    d, g = d_and_g(LeastSquaresLoss(a, b, c))
    assert d == pytest.approx(0.5 * mean((r - b) ** 2 for r in REAL) + 0.5 * mean((f - a) ** 2 for f in FAKE), rel=1e-6)
    assert g == pytest.approx(0.5 * mean((f - c) ** 2 for f in FAKE), rel=1e-6)


def test_hinge():
    d, g = d_and_g(HingeLoss())
    assert d == pytest.approx(mean(max(0, 1 - r) for r in REAL) + mean(max(0, 1 + f) for f in FAKE), rel=1e-6)
    assert g == pytest.approx(-mean(FAKE), rel=1e-6)


@pytest.mark.parametrize("loss", [MinimaxLoss(), NonSaturatingLoss()])
def test_sigmoid_losses_are_stable_at_extreme_logits(loss):
    """log(sigmoid(x)) underflows to -inf for x = -200 in float32; the softplus forms stay exact."""
    real, fake = torch.tensor([-200.0]), torch.tensor([200.0])
    d = loss.discriminator_loss(real, fake)["loss"]
    g = loss.generator_loss(torch.tensor([-200.0]))["loss"]
    assert torch.isfinite(d) and d.item() == pytest.approx(400.0)
    assert torch.isfinite(g)
    grad_input = torch.tensor([-200.0], requires_grad=True)
    loss.generator_loss(grad_input)["loss"].backward()
    assert torch.isfinite(grad_input.grad).all()


def test_scores_are_probabilities_only_for_sigmoid_losses():
    logits = torch.tensor([0.0, 2.0])
    assert NonSaturatingLoss().score(logits).item() == pytest.approx((0.5 + sigmoid(2.0)) / 2)
    assert WassersteinLoss().score(logits).item() == pytest.approx(1.0)


def test_least_squares_targets_that_do_not_differ_are_refused():
    """a == b gives D the same target for real and fake samples: it trained on without a signal (an audit)."""
    from gan.utils.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^loss.a=1 and loss.b=1: D's targets for fake \(a\) and real \(b\) samples must differ"):
        LeastSquaresLoss(a=1, b=1)
    assert LeastSquaresLoss(a=-1, b=1).b == 1.0
