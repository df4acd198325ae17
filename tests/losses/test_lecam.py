"""LeCam regularization (Tseng et al. 2021) against its formula, its anchors, and its state."""
import pytest
import torch

from gan.losses import LeCamPenalty
from gan.utils.errors import ConfigError
from tests.test_module import SHAPE, attach_trainer, make_module

REAL = torch.tensor([2.0, 0.5, -1.0, 1.5])
FAKE = torch.tensor([-1.0, 0.0, -2.5, 0.5])


def unused_critic(x):
    raise AssertionError("the penalty must reuse the step's logits")


def test_lecam_matches_eq_3_on_fixed_logits_and_anchors():
    penalty = LeCamPenalty(weight=0.3, decay=0.99)
    penalty.anchor_real.fill_(1.0)
    penalty.anchor_fake.fill_(-0.5)
    penalty.initialized.fill_(True)
    terms = penalty(unused_critic, None, None, REAL, FAKE)
    # the anchors first move 1% towards this batch's means (0.75 real, -0.75 fake) ...
    anchor_real, anchor_fake = 0.99 * 1.0 + 0.01 * 0.75, 0.99 * -0.5 + 0.01 * -0.75
    assert penalty.anchor_real.item() == pytest.approx(anchor_real)
    assert penalty.anchor_fake.item() == pytest.approx(anchor_fake)
    # ... then E[(D(x) - alpha_F)^2] + E[(D(G(z)) - alpha_R)^2], by hand
    expected = (sum((r - anchor_fake) ** 2 for r in REAL.tolist()) / 4
                + sum((f - anchor_real) ** 2 for f in FAKE.tolist()) / 4)
    assert terms["lecam"].item() == pytest.approx(expected, rel=1e-6)
    assert terms["loss"].item() == pytest.approx(0.3 * expected, rel=1e-6)


def test_the_first_step_sets_the_anchors_to_the_batch_means():
    penalty = LeCamPenalty()
    terms = penalty(unused_critic, None, None, REAL, FAKE)
    assert penalty.anchor_real.item() == pytest.approx(0.75) and penalty.anchor_fake.item() == pytest.approx(-0.75)
    expected = ((REAL + 0.75) ** 2).mean() + ((0.75 - FAKE) ** 2).mean()
    assert terms["lecam"].item() == pytest.approx(expected.item())


def test_one_sided_variant_penalizes_only_outputs_beyond_the_opposite_anchor():
    penalty = LeCamPenalty(one_sided=True, decay=0.0)  # decay 0: the anchors are this batch's means
    terms = penalty(unused_critic, None, None, REAL, FAKE)
    expected = ((REAL + 0.75).relu() ** 2).mean() + ((0.75 - FAKE).relu() ** 2).mean()
    assert terms["lecam"].item() == pytest.approx(expected.item())


def test_the_one_sided_variant_leaves_fakes_scored_above_the_real_anchor_alone():
    """Fakes scored above the real anchor (2.0 > 0.75) and reals below the fake one (-3.0 < -0.75) are not
    penalized one-sided; FAKE above never crosses the anchor, so it could not tell (a mutation)."""
    real, fake = torch.tensor([2.0, 0.5, -3.0, 3.5]), torch.tensor([2.0, -1.0, -2.5, -1.5])  # means 0.75, -0.75
    one_sided = LeCamPenalty(one_sided=True, decay=0.0)(unused_critic, None, None, real, fake)["lecam"]
    two_sided = LeCamPenalty(decay=0.0)(unused_critic, None, None, real, fake)["lecam"]
    real_part = torch.tensor([2.75, 1.25, 0.0, 4.25]).pow(2).mean()  # relu(real + 0.75): -3.0 gives 0
    fake_part = torch.tensor([0.0, 1.75, 3.25, 2.25]).pow(2).mean()  # relu(0.75 - fake): 2.0 gives 0
    assert one_sided.item() == pytest.approx((real_part + fake_part).item())
    assert two_sided.item() == pytest.approx((real_part + fake_part).item() + (2.25 ** 2 + 1.25 ** 2) / 4)


def test_gradient_reaches_the_logits_not_the_anchors():
    real, fake = REAL.clone().requires_grad_(True), FAKE.clone().requires_grad_(True)
    penalty = LeCamPenalty()
    penalty(unused_critic, None, None, real, fake)["loss"].backward()
    assert real.grad.abs().sum() > 0 and fake.grad.abs().sum() > 0
    assert not penalty.anchor_real.requires_grad


def test_without_logits_the_critic_is_called():
    penalty = LeCamPenalty()
    terms = penalty(lambda x: x.sum(dim=1), torch.ones(3, 2), torch.zeros(3, 2))
    assert terms["lecam"].item() == pytest.approx(2 * 2.0**2)  # anchors 2 and 0: (2 - 0)^2 + (2 - 0)^2


def test_anchors_are_saved_and_restored():
    penalty = LeCamPenalty()
    penalty(unused_critic, None, None, REAL, FAKE)
    restored = LeCamPenalty()
    restored.load_state_dict(penalty.state_dict())
    assert set(penalty.state_dict()) == {"anchor_real", "anchor_fake", "initialized"}
    a = penalty(unused_critic, None, None, FAKE, REAL)["lecam"]
    b = restored(unused_critic, None, None, FAKE, REAL)["lecam"]
    assert torch.equal(a, b)


def test_lecam_never_reads_a_value_back_to_the_host(monkeypatch):
    penalty = LeCamPenalty()

    def forbidden(*args, **kwargs):
        raise AssertionError("host sync in LeCamPenalty")

    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    penalty(unused_critic, None, None, REAL, FAKE)
    penalty(unused_critic, None, None, REAL, FAKE)


def test_lecam_in_a_discriminator_step_is_logged_and_checkpointed():
    module = make_module(penalties={"lecam": LeCamPenalty(weight=0.3)})
    attach_trainer(module)
    terms = module.discriminator_step(torch.randn(4, *SHAPE), module.optimizers()[1])
    assert torch.isfinite(terms["lecam"]) and "penalties.lecam.anchor_real" in module.state_dict()


@pytest.mark.parametrize("kwargs", [{"weight": -1.0}, {"decay": 1.0}])
def test_out_of_range_options_are_config_errors(kwargs):
    with pytest.raises(ConfigError, match="LeCamPenalty"):
        LeCamPenalty(**kwargs)
