"""model=r3gan's pieces: the RpGAN loss, the R1 + R2 penalty, the schedules, and how the module uses them."""
import math
import re
from functools import partial

import pytest
import torch

from gan.ema import GeneratorEMA
from gan.losses import R1R2Penalty, RelativisticLoss
from gan.module import GANModule
from gan.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator, R3GANGenerator
from gan.schedules import Constant, Cosine, EMAHalfLife, Linear, OptimizerSetting, PenaltySetting, parts_beyond_the_run
from gan.utils.checkpoint import load_checkpoint
from gan.utils.errors import ConfigError
from tests.conftest import tiny_overrides
from tests.test_module import attach_trainer
from train import train


# ----------------------------------------------------------------------------------------------- loss
def test_relativistic_loss_equals_its_formula_on_hand_computed_logits():
    real, fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([0.0, 1.0, 0.5])
    loss = RelativisticLoss()
    # D: mean softplus(-(real - fake)) = mean log(1 + exp(fake - real)), one pair per sample
    expected_d = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(2.0)) + math.log(2.0)) / 3
    assert loss.discriminator_loss(real, fake)["loss"].item() == pytest.approx(expected_d, rel=1e-6)
    # G: the mirror image, against the logits of a real batch
    expected_g = (math.log1p(math.exp(2.0)) + math.log1p(math.exp(-2.0)) + math.log(2.0)) / 3
    assert loss.generator_loss(fake, real_logits=real)["loss"].item() == pytest.approx(expected_g, rel=1e-6)
    assert loss.generator_needs_real and not loss.logits_are_probabilities
    with pytest.raises(ConfigError, match="pass real_logits"):
        loss.generator_loss(fake)


def test_relativistic_loss_only_sees_differences():
    """Adding the same constant to every logit changes nothing: RpGAN compares, it does not classify."""
    real, fake = torch.randn(16), torch.randn(16)
    loss = RelativisticLoss()
    for shift in (-7.0, 3.0):
        assert torch.allclose(loss.discriminator_loss(real + shift, fake + shift)["loss"], loss.discriminator_loss(real, fake)["loss"])
        assert torch.allclose(loss.generator_loss(fake + shift, real + shift)["loss"], loss.generator_loss(fake, real)["loss"])


# -------------------------------------------------------------------------------------------- penalty
def reference_squared_gradient_norm(critic, points, create_graph=False):
    """One sample at a time, with a fresh forward pass: ||d critic(x_i) / d x_i||^2 over all its entries
    (``create_graph``: differentiable with respect to the critic's parameters)."""
    norms = []
    for x in points:
        x = x.unsqueeze(0).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=create_graph)
        norms.append(grad.pow(2).sum())
    return torch.stack(norms)


@pytest.mark.parametrize("forward", ["own", "shared", "joint"])
def test_r1r2_equals_an_independent_autograd_implementation(forward):
    torch.manual_seed(0)
    critic = DCGANDiscriminator((1, 16, 16), width=4, norm="layer").double()
    real, fake = torch.randn(5, 1, 16, 16).double(), torch.randn(5, 1, 16, 16).double()
    logits = {}
    if forward != "own":  # as the module calls it: the inputs require grad and the loss's logits are reused
        real, fake = real.requires_grad_(True), fake.requires_grad_(True)
        if forward == "shared":  # one pass each
            logits = {"real_logits": critic(real), "fake_logits": critic(fake)}
        else:  # one pass over both (layer norm treats samples independently), split
            both = critic(torch.cat([real, fake]))
            logits = {"real_logits": both[:5], "fake_logits": both[5:]}
    terms = R1R2Penalty(gamma=0.3)(critic, real, fake, **logits)
    r1 = reference_squared_gradient_norm(critic, real).mean()
    r2 = reference_squared_gradient_norm(critic, fake).mean()
    assert terms["r1"].item() == pytest.approx(r1.item(), rel=1e-9)
    assert terms["r2"].item() == pytest.approx(r2.item(), rel=1e-9)
    assert terms["loss"].item() == pytest.approx(0.15 * (r1 + r2).item(), rel=1e-9)
    # it trains D: the penalty has a gradient with respect to D's parameters
    (grad,) = torch.autograd.grad(terms["loss"], critic.head.weight)
    assert grad.abs().sum() > 0


def test_r1r2_in_the_discriminator_step_reuses_the_loss_forward_pass():
    module = r3gan_module()
    attach_trainer(module)
    calls = []
    original = module.discriminator.evaluate
    module.discriminator.evaluate = lambda x, labels=None: calls.append(len(x)) or original(x, labels)
    terms = module.discriminator_step(torch.randn(4, 2), module.optimizers()[1])
    assert calls == [8]  # reals and fakes in one pass (the MLP treats samples independently); R1 and R2 differentiate it
    assert {"r1", "r2"} <= set(terms) and terms["r1"].item() > 0 and terms["r2"].item() > 0


@pytest.mark.parametrize("joint", [True, False])
def test_the_discriminator_step_gradient_equals_rpgan_plus_r1r2_by_independent_autograd(joint):
    """The step's gradient of D (one pass over reals and fakes together, or one each; the backward pass
    restricted to D's parameters) against the formula, evaluated with separate passes and per-sample input
    gradients: softplus(-(D(x) - D(G(z)))).mean() + gamma / 2 (||grad D(x)||^2 + ||grad D(G(z))||^2).mean()."""
    module = r3gan_module(discriminator=MLPDiscriminator((2,), hidden=[8, 8], maxout_pieces=1, dropout=0.0,
                                                         input_dropout=0.0, fourier_features=4))
    attach_trainer(module)
    assert module.joint_discriminator_pass  # an MLP without normalization
    module.joint_discriminator_pass = joint
    gamma = module.penalties["r1r2"].gamma
    real = torch.randn(6, 2)
    torch.manual_seed(3)
    fake = module.generator(module.generator.noise(6)).detach()  # what the step will draw
    critic = module.discriminator
    params = list(critic.parameters())
    expected_loss = (torch.nn.functional.softplus(-(critic(real) - critic(fake))).mean()
                     + 0.5 * gamma * (reference_squared_gradient_norm(critic, real, create_graph=True).mean()
                                      + reference_squared_gradient_norm(critic, fake, create_graph=True).mean()))
    expected = torch.autograd.grad(expected_loss, params)
    optimizer = module.optimizers()[1]
    optimizer.step = lambda *args, **kwargs: None  # keep D as it was, to read the step's gradient
    torch.manual_seed(3)
    terms = module.discriminator_step(real, optimizer)
    assert terms["loss"].item() == pytest.approx(expected_loss.item(), rel=1e-5)
    for param, grad in zip(params, expected):
        torch.testing.assert_close(param.grad, grad, rtol=1e-5, atol=1e-7)


def test_only_discriminators_that_treat_samples_independently_get_the_joint_pass():
    """Batch statistics, a minibatch layer or spectral norm's per-pass power iteration make one pass over
    reals and fakes differ from two; those discriminators keep two passes."""
    assert MLPDiscriminator((2,), hidden=[8], maxout_pieces=1).samples_independent
    assert DCGANDiscriminator((1, 16, 16), width=4, norm="layer").samples_independent
    assert not DCGANDiscriminator((1, 16, 16), width=4, norm="batch").samples_independent
    assert not DCGANDiscriminator((1, 16, 16), width=4, norm="none", spectral_norm=True).samples_independent
    assert not MLPDiscriminator((2,), hidden=[8], minibatch="stddev").samples_independent
    assert not r3gan_module(discriminator=MLPDiscriminator((2,), hidden=[8], spectral_norm=True)).joint_discriminator_pass


# ------------------------------------------------------------------------------------------ schedules
def test_cosine_ramp_at_start_middle_and_end_of_the_burn_in():
    curve = Cosine(start=1.0, end=0.1, steps=100)
    assert curve(0) == pytest.approx(1.0)
    assert curve(50) == pytest.approx(0.55)  # half way in value at half the burn-in
    assert curve(25) == pytest.approx(1.0 + (1 - 0.5 * (1 + math.cos(math.pi / 4))) * (0.1 - 1.0))
    assert curve(100) == curve(5000) == pytest.approx(0.1)  # then held
    assert Linear(0.0, 2.0, 10)(5) == pytest.approx(1.0)
    assert Constant(3.0)(10**6) == 3.0
    with pytest.raises(ConfigError, match="steps >= 1"):
        Cosine(1.0, 0.0, 0)


def test_a_ramp_then_another_curve_from_then_from_on_counted_from_there():
    cool_down = Cosine(3e-4, 3e-5, 40)
    curve = Cosine(5e-4, 3e-4, 100, then=cool_down, then_from=160)
    burn_in = Cosine(5e-4, 3e-4, 100)
    for step in (0, 37, 100, 159):  # the ramp, held after its 100 steps until the next curve starts
        assert curve(step) == burn_in(step)
    assert curve(100) == curve(159) == pytest.approx(3e-4)
    for step in (160, 170, 180, 199):  # the next curve, its steps counted from then_from
        assert curve(step) == cool_down(step - 160)
    assert curve(180) == pytest.approx(0.5 * (3e-4 + 3e-5))
    assert curve(200) == curve(10**6) == pytest.approx(3e-5)
    assert Linear(0.0, 1.0, 10, then=2.0, then_from=10)(10) == 2.0  # a number is a constant curve
    with pytest.raises(ConfigError, match="give both then"):
        Cosine(1.0, 0.0, 10, then_from=20)
    with pytest.raises(ConfigError, match="then_from >= steps"):
        Cosine(1.0, 0.0, 100, then=cool_down, then_from=50)


def test_schedule_parts_a_run_never_reaches_are_reported_with_the_value_the_run_ends_at():
    cool_down = Cosine(3e-4, 3e-5, 8000)
    lr = OptimizerSetting("lr", Cosine(5e-4, 3e-4, 18000, then=cool_down, then_from=22000))
    [short] = parts_beyond_the_run({"lr": lr}, 10000)  # the ramp unfinished (its value at the last step, 9,999) and the cool-down
    assert short.startswith(f"model.schedules.lr: the ramp from 0.0005 to 0.0003 takes 18000 generator steps, so the run ends at "
                            f"{lr.value(9999):.3g}; its next curve (then_from=22000) starts after the run's last step and never acts "
                            "(generator_steps=10000); ")
    [cut] = parts_beyond_the_run({"lr": lr}, 25000)  # the cool-down started but cut at its step 2,999
    assert f"its next curve, from step 22000: the ramp from 0.0003 to 3e-05 takes 8000 generator steps, so the run ends at {cool_down(2999):.3g} " in cut
    assert parts_beyond_the_run({"lr": lr}, 30000) == []
    # a ramp as long as the run (burn_in: ${generator_steps}) ends within a step of its end value; constants never
    assert parts_beyond_the_run({"lr": OptimizerSetting("lr", Cosine(2e-3, 5e-4, 1500)), "gamma": PenaltySetting("r1r2", "gamma", 0.1)}, 1500) == []
    assert len(parts_beyond_the_run({"lr": OptimizerSetting("lr", Cosine(2e-3, 5e-4, 1501))}, 1500)) == 1


@pytest.mark.parametrize("overrides,reported", [
    (["data=toy2d_grid", "generator_steps=10000"], ["beta2", "ema_half_life", "gamma", "lr"]),  # the preset's burn-in is 18,000
    (["data=toy2d_grid"], []),  # its 30,000 steps
    (["data=digits"], []),  # the default run: its ramps follow generator_steps
    (["data=digits", "generator_steps=500"], []),
])
def test_the_presets_schedules_are_reported_only_when_the_run_is_shorter_than_them(make_cfg, overrides, reported):
    from gan.utils.instantiate import build_module

    module = build_module(make_cfg(["model=r3gan", "logger=none", *overrides]))
    lines = parts_beyond_the_run(module.schedules, int(make_cfg(["model=r3gan", *overrides]).generator_steps))
    assert sorted(line.split(":")[0].rsplit(".", 1)[1] for line in lines) == reported


def test_a_run_shorter_than_its_schedules_says_so_when_it_starts(make_cfg, caplog):
    with caplog.at_level("WARNING", logger="gan"):
        train(make_cfg(tiny_overrides("r3gan", "toy2d_grid", steps=2) + ["metrics=none"]))
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("model.schedules.")]
    assert sorted(line.split(":")[0] for line in said) == ["model.schedules.beta2", "model.schedules.ema_half_life",
                                                          "model.schedules.gamma", "model.schedules.lr"]
    assert "its next curve (then_from=22000) starts after the run's last step and never acts (generator_steps=2)" in said[0]


def r3gan_module(**kwargs):
    torch.manual_seed(0)
    adam = partial(torch.optim.Adam, lr=2e-4, betas=(0.0, 0.9))
    settings = dict(
        generator=MLPGenerator(4, (2,), hidden=[8], output="identity"),
        discriminator=MLPDiscriminator((2,), hidden=[8], maxout_pieces=1, dropout=0.0, input_dropout=0.0),
        loss=RelativisticLoss(),
        optimizer={"generator": adam, "discriminator": adam},
        penalties={"r1r2": R1R2Penalty(gamma=1.0)},
        ema_decay=0.0,
        schedules={
            "lr": OptimizerSetting("lr", Cosine(2e-4, 5e-5, 100)),
            "beta2": OptimizerSetting("beta2", Cosine(0.9, 0.99, 100)),
            "gamma": PenaltySetting("r1r2", "gamma", Cosine(1.0, 0.1, 100)),
            "ema_half_life": EMAHalfLife(Cosine(0.0, 10.0, 100)),
        },
        num_fixed_samples=8,
    )
    settings.update(kwargs)
    return GANModule(**settings)


@pytest.mark.parametrize("step", [0, 50, 100, 400])
def test_schedules_set_lr_beta2_gamma_and_ema_half_life_from_the_generator_step(step):
    module = r3gan_module()
    attach_trainer(module)
    module.generator_steps = step
    values = {name: setting.apply(module, step) for name, setting in module.schedules.items()}
    cosine = lambda a, b: Cosine(a, b, 100)(step)  # noqa: E731
    for network in ("generator", "discriminator"):
        group = module.optimizer_of(network).param_groups[0]
        assert group["lr"] == pytest.approx(cosine(2e-4, 5e-5))
        assert group["betas"] == pytest.approx((0.0, cosine(0.9, 0.99)))
    assert module.penalties["r1r2"].gamma == pytest.approx(cosine(1.0, 0.1))
    half_life = cosine(0.0, 10.0)
    assert values["ema_half_life"] == pytest.approx(half_life)
    assert module.generator_ema.decay == pytest.approx(0.5 ** (1 / half_life) if half_life > 0 else 0.0)


def test_a_half_life_of_zero_makes_the_ema_a_copy_and_longer_ones_average():
    generator = MLPGenerator(4, (2,), hidden=[8])
    ema = GeneratorEMA(generator, decay=0.0)
    with torch.no_grad():
        for p in generator.parameters():
            p.add_(1.0)
    ema.update(generator)
    assert all(torch.equal(a, b) for a, b in zip(ema.module.parameters(), generator.parameters()))
    ema.decay = 0.5 ** (1 / 2.0)  # half-life of 2 updates: after two, the old weights weigh one half
    before = [p.clone() for p in ema.module.parameters()]
    with torch.no_grad():
        for p in generator.parameters():
            p.add_(1.0)
    ema.update(generator)
    ema.update(generator)
    for old, new, target in zip(before, ema.module.parameters(), generator.parameters()):
        assert torch.allclose(new, 0.5 * old + 0.5 * target, atol=1e-6)


def test_schedule_targets_are_checked_when_the_module_is_built():
    with pytest.raises(ConfigError, match=r"^model.schedules.gamma targets penalty 'r1', but model.penalties has \['r1r2'\]; "
                                          r"expected model.schedules.gamma=null beside a penalty left out "
                                          r"\(model.penalties.r1=null\), or that penalty$"):
        r3gan_module(schedules={"gamma": PenaltySetting("r1", "gamma", 1.0)})
    with pytest.raises(ConfigError, match="no EMA generator"):
        r3gan_module(ema_decay=None)


def test_a_curve_s_bounds_cover_every_step_it_takes():
    curve = Cosine(5e-4, 3e-4, 100, then=Cosine(3e-4, 3e-5, 40), then_from=160)
    low, high = curve.bounds()
    values = [curve(step) for step in range(0, 400, 3)]
    assert (low, high) == (pytest.approx(min(values)), pytest.approx(max(values))) == (pytest.approx(3e-5), pytest.approx(5e-4))
    assert Linear(0.0, -1.0, 10).bounds() == (-1.0, 0.0) and Constant(2.0).bounds() == (2.0, 2.0)


@pytest.mark.parametrize("name,setting,message", [
    # each trained on: a learning rate scheduled below 0 turned training into ascent after the start
    ("lr", OptimizerSetting("lr", Cosine(2e-4, -1.0, 100)), "model.schedules.lr: Cosine(start=0.0002, end=-1.0, steps=100) "
     "reaches -1.0; expected lr >= 0.0 at every step"),
    ("beta2", OptimizerSetting("beta2", Cosine(0.9, 1.0, 100)), "model.schedules.beta2: Cosine(start=0.9, end=1.0, steps=100) "
     "reaches 1.0; expected beta2 in [0.0, 1.0) at every step"),
    ("gamma", PenaltySetting("r1r2", "gamma", Linear(1.0, 0.1, 10, then=-0.5, then_from=20)),
     "model.schedules.gamma: Linear(start=1.0, end=0.1, steps=10, then=Constant(-0.5), then_from=20) reaches -0.5; "
     "expected r1r2's gamma >= 0.0 at every step"),
    ("ema_half_life", EMAHalfLife(Cosine(0.0, -5.0, 100)), "model.schedules.ema_half_life: Cosine(start=0.0, end=-5.0, "
     "steps=100) reaches -5.0; expected the EMA half-life (generator steps) >= 0.0 at every step"),
])
def test_a_schedule_that_leaves_its_value_s_range_is_refused_when_the_module_is_built(name, setting, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        r3gan_module(schedules={name: setting})


def test_training_step_uses_a_fresh_real_batch_for_the_generator():
    module = r3gan_module()
    attach_trainer(module)
    assert module.real_batches_per_iteration == 2
    seen = {}
    for phase in ("discriminator_step", "generator_step"):
        original = getattr(module, phase)

        def record(real, *args, _phase=phase, _original=original, **kwargs):
            seen[_phase] = real.clone()
            return _original(real, *args, **kwargs)

        setattr(module, phase, record)
    batch = torch.arange(16.0).view(8, 2)
    module.training_step((batch, torch.zeros(8)), 0)
    assert torch.equal(seen["discriminator_step"], batch[:4])
    assert torch.equal(seen["generator_step"], batch[4:])  # a fresh real batch, not the D step's


@pytest.mark.slow
def test_schedules_continue_exactly_after_a_resume(make_cfg, tmp_path):
    """The optimizers' lr/beta2, gamma and the EMA decay are recomputed from the checkpointed generator step:
    a run resumed mid burn-in ends where the uninterrupted one does."""
    run = tiny_overrides("r3gan", "toy2d_ring", steps=6) + [
        "burn_in=8", "metrics=none", "callbacks.model_checkpoint.every_n_train_steps=6",
        "callbacks.model_checkpoint.save_top_k=-1"]
    _, full = train(make_cfg(run, output_dir=tmp_path / "full"))
    middle = tmp_path / "full" / "checkpoints" / "gstep_0000003.ckpt"
    assert load_checkpoint(middle)["gan_counters"]["generator_steps"] == 3
    _, resumed = train(make_cfg(run + [f"ckpt_path={middle}"], output_dir=tmp_path / "resumed"))
    a, b = full["module"], resumed["module"]
    for network in ("generator", "discriminator"):
        assert a.optimizer_of(network).param_groups[0]["lr"] == b.optimizer_of(network).param_groups[0]["lr"]
        assert a.optimizer_of(network).param_groups[0]["betas"] == b.optimizer_of(network).param_groups[0]["betas"]
    assert a.penalties["r1r2"].gamma == b.penalties["r1r2"].gamma
    assert a.generator_ema.decay == b.generator_ema.decay
    state_a, state_b = a.state_dict(), b.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_r3gan_composes_with_its_schedules_and_penalty(make_cfg):
    from gan.utils.instantiate import build_module

    cfg = make_cfg(["model=r3gan", "data=toy2d_grid", "logger=none"])
    module = build_module(cfg)
    assert isinstance(module.loss, RelativisticLoss) and set(module.penalties) == {"r1r2"}
    assert set(module.schedules) == {"lr", "beta2", "gamma", "ema_half_life"}
    assert module.penalties["r1r2"].gamma == cfg.model.schedules.gamma.value.start
    assert module.generator_ema is not None
    assert [o.defaults["betas"][0] for o in module.configure_optimizers()] == [0.0, 0.0]  # Adam beta1 = 0


@pytest.mark.parametrize("data, last", [("cifar10", torch.nn.Identity), ("celeba", torch.nn.Identity), ("digits", torch.nn.Tanh),
                                        ("stacked_mnist", torch.nn.Tanh)])
def test_r3gan_s_own_generator_is_linear_and_the_dcgan_layout_presets_keep_tanh(make_cfg, data, last):
    """R3GAN's G ends in a plain 1x1 convolution (R3GAN/Networks.py, as the README says); the model config gave it
    the data's tanh (an audit). The digits and Stacked MNIST presets use the DCGAN layout, whose tanh they were
    measured with."""
    from gan.utils.instantiate import build

    generator = build(make_cfg(["model=r3gan", f"data={data}", "logger=none"]).model.generator)
    modules = list(generator.modules())
    own = isinstance(generator, R3GANGenerator)
    assert own == (data in ("cifar10", "celeba"))
    assert isinstance(modules[-1], last), modules[-1]


def test_a_next_curve_starting_at_the_run_s_last_step_count_is_reported_as_never_acting():
    """Steps run 0 .. run_steps - 1: a next curve from then_from == run_steps never acts, and is said so (only
    then_from > run_steps was; a mutation audit). One step earlier it acts for one step, and is not reported."""
    curve = Linear(1.0, 0.5, 10, then=0.25, then_from=100)
    assert curve.beyond(100) == ["its next curve (then_from=100) starts after the run's last step and never acts"]
    assert curve.beyond(101) == []
    assert curve(99) == 0.5 and curve(100) == 0.25
