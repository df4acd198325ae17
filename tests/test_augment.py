"""DiffAugment and adaptive augmentation: each op, differentiability, where the module applies them, ADA's p."""
import math

import pytest
import torch
from torch import nn

from gan.augment import AdaptiveAugment, DiffAugment, brightness, contrast, cutout, saturation, translation
from gan.losses import NonSaturatingLoss, R1Penalty
from gan.utils.errors import ConfigError
from gan.utils.instantiate import build
from tests.conftest import CONF_DIR, MODELS, tiny_overrides
from tests.test_module import SHAPE, attach_trainer, make_module

# the command-line key of the augment group (train.yaml lists it as `augment` or as `augment@model.augment`)
AUGMENT = "augment@model.augment" if "augment@model.augment" in (CONF_DIR / "train.yaml").read_text() else "augment"


def images(n=6, shape=(3, 16, 16), seed=0):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ------------------------------------------------------------------------------------------------ the ops
@pytest.mark.parametrize("op", [brightness, saturation, contrast, translation, cutout])
def test_every_op_keeps_the_shape_dtype_and_is_finite(op):
    x = images()
    out = op(x)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    assert not torch.equal(out, x)  # it does something (random, but never the identity on this batch)


@pytest.mark.parametrize("op", [translation, cutout])
def test_geometric_ops_only_move_values_or_fill_zeros(op):
    x = images()
    out = op(x)
    allowed = torch.cat([x.flatten(), torch.zeros(1)])
    assert torch.isin(out, allowed).all()  # no new values: the range stays within the data's and 0


def test_colour_ops_stay_in_their_documented_range():
    torch.manual_seed(0)
    x = images(n=64)
    shift = brightness(x) - x
    assert shift.abs().max() <= 0.5 and torch.allclose(shift, shift[:, :1, :1, :1].expand_as(shift))  # one shift per sample
    out = saturation(x)  # each pixel's channel mean is kept, deviations scaled by [0, 2]
    assert torch.allclose(out.mean(dim=1), x.mean(dim=1), atol=1e-6)
    deviation = (x - x.mean(dim=1, keepdim=True)).abs()
    assert ((out - out.mean(dim=1, keepdim=True)).abs() <= 2 * deviation + 1e-6).all()
    gray = images(shape=(1, 8, 8))
    assert torch.allclose(saturation(gray), gray)  # nothing to saturate in one channel
    out = contrast(x)  # each sample's mean is kept, deviations scaled by [0.5, 1.5]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(out.mean(dim=(1, 2, 3), keepdim=True), mean, atol=1e-6)
    ratio = (out - mean).flatten(1).norm(dim=1) / (x - mean).flatten(1).norm(dim=1)
    assert ((ratio >= 0.5 - 1e-5) & (ratio <= 1.5 + 1e-5)).all()


def test_translation_moves_content_by_at_most_an_eighth():
    torch.manual_seed(0)
    x = torch.zeros(200, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    out = translation(x)
    where = out[:, 0].flatten(1).argmax(dim=1)
    rows, cols = where // 16, where % 16
    assert (out.flatten(1).sum(dim=1) == 1).all()  # a shift of 2 keeps the centre pixel inside
    assert ((rows - 8).abs() <= 2).all() and ((cols - 8).abs() <= 2).all()
    assert len(set(zip(rows.tolist(), cols.tolist()))) == 25  # every shift in [-2, 2]^2 is drawn
    assert torch.equal(translation(x, ratio=0.0), x)


def test_cutout_zeroes_one_square_of_half_the_size():
    torch.manual_seed(0)
    out = cutout(torch.ones(100, 2, 16, 16))
    zeroed = (out[:, 0] == 0).flatten(1).sum(dim=1)
    assert (zeroed <= 64).all() and (zeroed == 64).any() and (zeroed > 0).all()  # an 8x8 square, clipped at edges
    assert torch.equal(out[:, 0], out[:, 1])  # the same square in every channel


# ------------------------------------------------------------------------------------------- DiffAugment
def test_diffaugment_is_differentiable_so_the_generator_gets_a_gradient():
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(4, 3 * 16 * 16), nn.Tanh(), nn.Unflatten(1, (3, 16, 16)))
    discriminator = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 1))
    for policy in ["color", "translation", "cutout", "color,translation,cutout"]:
        generator.zero_grad()
        discriminator(DiffAugment(policy)(generator(torch.randn(8, 4)))).sum().backward()
        grads = [p.grad for p in generator.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), policy


def test_diffaugment_runs_its_policy_ops_in_order_and_is_the_identity_when_off():
    assert [name for name, _ in DiffAugment("color,translation,cutout").ops] == [
        "brightness", "saturation", "contrast", "translation", "cutout"]
    assert [name for name, _ in DiffAugment("cutout, translation").ops] == ["cutout", "translation"]
    x = images()
    for off in ["", None, []]:
        assert torch.equal(DiffAugment(off)(x), x)


def test_unknown_policy_and_vector_data_are_one_line_config_errors():
    with pytest.raises(ConfigError, match=r"unknown augmentation policy 'flip'.*color,translation,cutout"):
        DiffAugment("color,flip")
    with pytest.raises(ConfigError, match=r"augments images.*sample shape is \[2\]"):
        DiffAugment(sample_shape=[2])
    with pytest.raises(ConfigError, match=r"\(N, C, H, W\).*\(4, 2\)"):
        DiffAugment()(torch.randn(4, 2))


class RecordingAugment(DiffAugment):
    """DiffAugment that records every batch it augments (the op names it ran and the batch size)."""

    def __init__(self, policy="translation,cutout"):
        super().__init__(policy)
        self.calls = []

    def forward(self, x):
        self.calls.append(([name for name, _ in self.ops], x.size(0), x.requires_grad))
        return super().forward(x)


def test_the_module_augments_reals_and_fakes_in_the_d_step_and_fakes_in_the_g_step():
    augment = RecordingAugment()
    module = make_module(augment=augment)
    attach_trainer(module)
    opt_g, opt_d = module.optimizers()
    module.discriminator_step(torch.randn(4, *SHAPE), opt_d)
    assert len(augment.calls) == 2  # the real and the fake batch
    module.generator_step(torch.randn(4, *SHAPE), opt_g)
    assert len(augment.calls) == 3 and augment.calls[2][2]  # the fakes, still attached to G's graph
    assert all(ops == ["translation", "cutout"] for ops, _, _ in augment.calls)  # one policy for all


def test_r1_is_taken_through_the_augmentation_with_respect_to_the_unaugmented_reals():
    module = make_module(augment=DiffAugment("color,translation,cutout"), penalties={"r1": R1Penalty(gamma=10.0)})
    attach_trainer(module)
    terms = module.discriminator_step(torch.randn(4, *SHAPE), module.optimizers()[1])
    assert torch.isfinite(terms["r1"]) and terms["r1"] > 0
    assert all(torch.isfinite(p.grad).all() for p in module.discriminator.parameters() if p.grad is not None)


@pytest.mark.parametrize("group", ["diffaugment", "ada"])
def test_augment_configs_build_and_vector_data_fails_before_training(make_cfg, group):
    augment = build(make_cfg(tiny_overrides("sngan") + [f"{AUGMENT}={group}", "model.augment.policy=translation"]).model.augment)
    assert isinstance(augment, DiffAugment) and [name for name, _ in augment.ops] == ["translation"]
    with pytest.raises(ConfigError, match=r"augments images.*\[2\]"):
        build(make_cfg(tiny_overrides("wgan_gp", data="toy2d_grid") + [f"{AUGMENT}={group}"]).model.augment)


# ------------------------------------------------------------------------------------------------- ADA
def observe(ada, logits, times):
    for _ in range(times):
        ada.observe(logits)


def test_ada_probability_rises_when_d_is_confidently_right_on_reals():
    # 4 D steps of 64 reals = 256 images per adjustment; speed 2.56 kimg: 0.1 per adjustment
    ada = AdaptiveAugment(interval=4, speed_kimg=2.56)
    observe(ada, torch.full((64,), 5.0), 3)
    assert ada.p.item() == 0.0  # not due yet
    observe(ada, torch.full((64,), 5.0), 1)
    assert ada.p.item() == pytest.approx(0.1) and ada.rt.item() == 1.0
    observe(ada, torch.full((64,), 5.0), 40)
    assert ada.p.item() == 1.0  # clamped


@pytest.mark.parametrize("logits", [torch.full((64,), -3.0), torch.tensor([1.0, -1.0] * 32)])
def test_ada_probability_falls_when_d_is_not_overfitting(logits):
    ada = AdaptiveAugment(interval=4, speed_kimg=2.56, initial_p=0.5)
    observe(ada, logits, 8)
    assert ada.p.item() == pytest.approx(0.3)  # r_t = -1 or 0, below the target 0.6: two steps down
    observe(ada, logits, 40)
    assert ada.p.item() == 0.0


def test_each_adjustment_reads_only_the_reals_since_the_last_one():
    """r_t is the mean sign over one interval: sums carried over from earlier intervals would steer p by the whole
    run's history (a mutation that never reset them survived the sign-constant tests)."""
    ada = AdaptiveAugment(interval=4, speed_kimg=2.56, initial_p=0.5)
    observe(ada, torch.full((64,), 5.0), 4)
    assert ada.rt.item() == 1.0 and ada.p.item() == pytest.approx(0.6)
    observe(ada, torch.full((64,), -5.0), 4)
    assert ada.rt.item() == -1.0 and ada.p.item() == pytest.approx(0.5)  # the history would read 0: below 0.6 too
    observe(ada, torch.tensor([1.0, 1.0, 1.0, -1.0] * 16), 4)  # 0.5 this interval, 0.17 with the history
    assert ada.rt.item() == pytest.approx(0.5)


def test_ada_logs_the_running_rt_before_its_first_adjustment():
    """r_t is the mean sign over an interval; before the first adjustment the logged value was the buffer's
    initial 0.0, which reads as "D neither right nor wrong" for a D that was right on every real."""
    ada = AdaptiveAugment(interval=4, speed_kimg=2.56)
    observe(ada, torch.full((64,), 5.0), 1)
    assert ada.terms()["augment_rt"].item() == 1.0 and ada.p.item() == 0.0
    observe(ada, torch.tensor([1.0, -1.0, 1.0, 1.0] * 16), 1)  # 64 + 32 - 16 of 128: 0.75
    assert ada.terms()["augment_rt"].item() == pytest.approx(0.75)
    observe(ada, torch.full((64,), 5.0), 2)  # the first adjustment: its r_t is logged until the next one
    observe(ada, torch.full((64,), -5.0), 1)
    assert ada.terms()["augment_rt"].item() == pytest.approx((64 + 32 + 64 + 64) / 256)  # not the running -1


def test_ada_state_survives_a_checkpoint_round_trip_exactly():
    torch.manual_seed(0)
    ada = AdaptiveAugment(interval=4, speed_kimg=1.0)
    observe(ada, torch.randn(32) + 1.0, 6)  # mid-interval: the accumulators matter too
    restored = AdaptiveAugment(interval=4, speed_kimg=1.0)
    restored.load_state_dict(ada.state_dict())
    assert set(ada.state_dict()) == {"p", "sign_sum", "images", "steps", "rt"}
    more = [torch.randn(32) + 1.0 for _ in range(5)]
    for logits in more:
        ada.observe(logits)
        restored.observe(logits)
    assert ada.p.item() > 0 and torch.equal(ada.p, restored.p) and torch.equal(ada.rt, restored.rt)


def test_ada_p_is_in_the_module_checkpoint_and_logged():
    module = make_module(augment=AdaptiveAugment(interval=1, speed_kimg=0.001))
    attach_trainer(module)
    terms = module.discriminator_step(torch.randn(4, *SHAPE), module.optimizers()[1])
    assert "augment.p" in module.state_dict()
    assert {"augment_p", "augment_rt"} <= set(terms) and terms["augment_p"] in (0.0, 1.0)


@pytest.mark.parametrize("output, direction", [(0.6, 1), (0.4, -1)])
def test_ada_judges_a_least_squares_d_from_the_midpoint_of_its_targets(output, direction):
    """LSGAN's D (targets 0 and 1) outputs about 0.5 where it cannot tell reals from fakes, all of it positive: ADA
    steering by the raw sign read every such D as overfitting and drove p to 1 (an audit). The module measures D's
    real outputs from the loss's decision boundary (real_margin), 0.5: a D that outputs 0.6 on every real calls them
    real, 0.4 fake."""
    from gan.losses import LeastSquaresLoss

    module = make_module(loss=LeastSquaresLoss(), augment=AdaptiveAugment(interval=1, speed_kimg=0.001, initial_p=0.5))
    with torch.no_grad():  # a D with one output whatever its input
        module.discriminator.head.weight.zero_()
        module.discriminator.head.bias.fill_(output)
    attach_trainer(module)
    module.discriminator_step(torch.randn(4, *SHAPE), module.optimizers()[1])
    assert module.augment.rt.item() == direction
    assert module.augment.p.item() == (1.0 if direction > 0 else 0.0)  # 4 images at speed 0.001 kimg: a full step
    outputs = torch.tensor([-0.3, 0.2, 0.9])
    assert torch.equal(NonSaturatingLoss().real_margin(outputs), outputs)  # logits: the boundary is 0
    assert torch.equal(LeastSquaresLoss(a=-1.0, b=1.0).real_margin(outputs), outputs)
    # targets the other way round (a=1 fake, b=0 real): an output near 1 is judged fake
    assert torch.allclose(LeastSquaresLoss(a=1.0, b=0.0).real_margin(outputs), torch.tensor([0.8, 0.3, -0.4]))


def test_ada_applies_each_op_with_probability_p():
    x = images(n=2000, shape=(1, 4, 4))
    torch.manual_seed(0)
    assert torch.equal(AdaptiveAugment("translation", initial_p=0.0)(x), x)
    full = AdaptiveAugment("cutout", initial_p=1.0)(x)
    assert (full != x).flatten(1).any(dim=1).all()  # p = 1: every sample, as DiffAugment
    torch.manual_seed(0)
    half = AdaptiveAugment("cutout", initial_p=0.3)(x)
    touched = (half != x).flatten(1).any(dim=1).float().mean()
    assert touched.item() == pytest.approx(0.3, abs=0.04)


def test_ada_observe_never_reads_a_value_back_to_the_host(monkeypatch):
    ada = AdaptiveAugment(interval=2, speed_kimg=1.0)

    def forbidden(*args, **kwargs):
        raise AssertionError("host sync in observe()")

    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    observe(ada, torch.ones(8), 5)
    ada.terms()
    monkeypatch.undo()
    assert ada.p.item() > 0


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("model", MODELS)
def test_every_variant_trains_finite_steps_with_diffaugment(make_cfg, model):
    from train import train

    metrics, objects = train(make_cfg(tiny_overrides(model, steps=2) + [f"{AUGMENT}=diffaugment"]))
    assert isinstance(objects["module"].augment, DiffAugment)
    assert all(math.isfinite(metrics[k]) for k in ("train/d/loss", "train/g/loss"))


def test_ada_with_lecam_on_resnets_trains_and_logs_p(make_cfg):
    from train import train

    overrides = tiny_overrides("sngan", steps=3) + [
        f"{AUGMENT}=ada", "model.augment.speed_kimg=0.01", "model.augment.interval=1",
        "+model.penalties.lecam={_target_:gan.losses.LeCamPenalty,weight:0.3}",
        "arch=resnet", "model.generator.width=4", "model.discriminator.width=4",
    ]
    metrics, objects = train(make_cfg(overrides))
    assert 0.0 <= metrics["train/d/augment_p"] <= 1.0 and math.isfinite(metrics["train/d/lecam"])
    assert objects["module"].augment.steps.item() == 3


def test_translation_and_cutout_spans_round_half_up_as_diffaugment_does():
    """DiffAugment's int(size * ratio + 0.5): 28 px at ratio 1/8 shifts by up to 4 px, not 3, and a 10-px cut-out at
    ratio 1/4 is 3 px wide, not 2 (truncation shrank both; a mutation audit)."""
    torch.manual_seed(0)
    x = torch.zeros(600, 1, 28, 28)
    x[:, :, 14, 14] = 1.0
    out = translation(x)
    where = out[:, 0].flatten(1).argmax(dim=1)
    rows, cols = where // 28 - 14, where % 28 - 14
    assert (out.flatten(1).sum(dim=1) == 1).all()
    assert set(rows.tolist()) == set(cols.tolist()) == set(range(-4, 5))  # every shift in [-4, 4] is drawn
    out = cutout(torch.ones(400, 1, 10, 10), ratio=0.25)
    zeroed = (out[:, 0] == 0).flatten(1).sum(dim=1)
    assert zeroed.max() == 9 and (zeroed > 0).all()  # a 3x3 square, clipped at edges
