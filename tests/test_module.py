"""GANModule phases: no gradient leaks between the networks, n_critic counting, EMA, checkpoint state."""
import re
from functools import partial

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers.logger import Logger

from gan.losses import GradientPenalty, NonSaturatingLoss, WassersteinLoss
from gan.module import GANModule, frozen
from gan.nets import DCGANDiscriminator, DCGANGenerator

SHAPE = (1, 16, 16)


def make_module(**kwargs):
    torch.manual_seed(0)
    defaults = dict(
        generator=DCGANGenerator(8, SHAPE, width=4),
        discriminator=DCGANDiscriminator(SHAPE, width=4),
        loss=NonSaturatingLoss(),
        optimizer={"generator": partial(torch.optim.Adam, lr=1e-2), "discriminator": partial(torch.optim.Adam, lr=1e-2)},
        num_fixed_samples=8,
    )
    defaults.update(kwargs)
    return GANModule(**defaults)


def attach_trainer(module):
    """A real Trainer so manual_backward/toggle_optimizer work, without running fit."""
    trainer = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, max_steps=1)
    trainer.strategy.connect(module)
    trainer.strategy._lightning_optimizers = None
    module.trainer = trainer
    trainer.strategy.setup_optimizers(trainer)
    return trainer


def params(net):
    return [p.detach().clone() for p in net.parameters()]


def changed(before, net):
    return [not torch.equal(a, b) for a, b in zip(before, net.parameters())]


@pytest.mark.parametrize("penalty", [None, GradientPenalty()])
def test_discriminator_step_leaves_generator_untouched(penalty):
    module = make_module(penalties={"gp": penalty}, loss=WassersteinLoss() if penalty else NonSaturatingLoss())
    attach_trainer(module)
    opt_g, opt_d = module.optimizers()
    g_before, d_before = params(module.generator), params(module.discriminator)
    module.discriminator_step(torch.randn(4, *SHAPE), opt_d)
    assert not any(changed(g_before, module.generator))
    assert all(p.grad is None for p in module.generator.parameters())
    assert any(changed(d_before, module.discriminator))


def test_generator_step_leaves_discriminator_untouched():
    module = make_module()
    attach_trainer(module)
    opt_g, opt_d = module.optimizers()
    g_before, d_before = params(module.generator), params(module.discriminator)
    module.generator_step(torch.randn(4, *SHAPE), opt_g)
    # BatchNorm running statistics of D may move (D sees fakes in train mode); its parameters must not
    assert not any(changed(d_before, module.discriminator))
    assert all(p.grad is None for p in module.discriminator.parameters())
    assert any(changed(g_before, module.generator))


def test_frozen_restores_what_it_froze_and_leaves_frozen_parameters_frozen():
    net = torch.nn.Linear(2, 2)
    net.bias.requires_grad_(False)  # frozen by the user: must stay so after the block
    freeze = frozen(net.parameters())
    for _ in range(2):  # one object serves every step
        with freeze:
            assert not net.weight.requires_grad and not net.bias.requires_grad
            net(torch.randn(3, 2, requires_grad=True)).sum().backward()  # reaches the input only
        assert net.weight.requires_grad and not net.bias.requires_grad
        assert net.weight.grad is None
    with pytest.raises(RuntimeError), freeze:  # an error inside the block restores them too
        raise RuntimeError
    assert net.weight.requires_grad and not net.bias.requires_grad


def test_plain_attributes_are_set_directly_and_registrations_still_work():
    module = make_module()
    module.generator_steps = 5
    assert module.generator_steps == 5 and module.state_dict().keys() == make_module().state_dict().keys()
    module.generator_steps = torch.nn.Linear(1, 1)  # a module under a plain attribute's name: registered
    assert "generator_steps" in module._modules and "generator_steps" not in module.__dict__
    module.fixed_noise = None  # a buffer's name: nn.Module's own handling (the buffer is set to None)
    assert "fixed_noise" in module._buffers and module._buffers["fixed_noise"] is None
    module.extra_weight = torch.nn.Parameter(torch.zeros(1))  # a new name: registered
    assert "extra_weight" in dict(module.named_parameters())


@pytest.mark.parametrize("n_critic,n_generator,iterations", [(1, 1, 6), (5, 1, 2), (3, 2, 3)])
def test_each_training_step_is_n_critic_discriminator_updates_then_n_generator_updates(n_critic, n_generator, iterations):
    module = make_module(n_critic=n_critic, n_generator=n_generator)
    attach_trainer(module)
    order, seen = [], []
    opt_g, opt_d = module.optimizers()
    for opt, name in ((opt_g, "G"), (opt_d, "D")):
        original = opt.step
        opt.step = lambda *a, _original=original, _name=name, **k: order.append(_name) or _original(*a, **k)
    original_d_step = module.discriminator_step
    module.discriminator_step = lambda real, *a, **k: seen.append(real[:, 0, 0, 0].clone()) or original_d_step(real, *a, **k)
    for i in range(iterations):
        real = torch.randn(4 * module.real_batches_per_iteration, *SHAPE)
        module.training_step((real, torch.zeros(len(real))), i)
        # every D step of the iteration trains on its own quarter of the training batch, in order
        assert torch.equal(torch.cat(seen[-n_critic:]), real[:, 0, 0, 0])
    assert order == (["D"] * n_critic + ["G"] * n_generator) * iterations
    assert (module.discriminator_steps, module.generator_steps) == (n_critic * iterations, n_generator * iterations)


def test_only_the_kept_discriminator_step_computes_diagnostics_and_the_update_is_the_same():
    """The first n_critic - 1 D steps skip their diagnostic terms (their terms are never kept): same update,
    same RNG draws, and the iteration's logged D terms are the last step's, scores included."""
    reference, trimmed = make_module(), make_module()
    for module in (reference, trimmed):
        attach_trainer(module)
    real = torch.randn(4, *SHAPE)
    terms = {}
    for module, diagnostics in ((reference, True), (trimmed, False)):
        torch.manual_seed(1)  # the fakes' noise
        terms[diagnostics] = module.discriminator_step(real, module.optimizers()[1], diagnostics=diagnostics)
    for a, b in zip(reference.discriminator.parameters(), trimmed.discriminator.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(terms[True]["loss"], terms[False]["loss"])
    assert set(terms[True]) - set(terms[False]) == {"real_score", "fake_score"}

    module = make_module(n_critic=3)
    attach_trainer(module)
    calls = []
    original_d_step = module.discriminator_step
    module.discriminator_step = lambda *a, **k: calls.append(k["diagnostics"]) or original_d_step(*a, **k)
    module.training_step((torch.randn(12, *SHAPE), torch.zeros(12)), 0)
    assert calls == [False, False, True]
    assert {"train/d/real_score", "train/d/fake_score"} <= set(module.last_terms)
    # kept without graphs: a term holding its graph would keep the step's autograd nodes alive
    assert all(value.grad_fn is None and not value.requires_grad for value in module.last_terms.values()
               if isinstance(value, torch.Tensor))


def test_a_batch_that_does_not_split_into_the_iteration_is_a_clear_error():
    module = make_module(n_critic=3)
    attach_trainer(module)
    with pytest.raises(ValueError, match="batch of 8 samples cannot be split into the 3 real batches"):
        module.training_step((torch.randn(8, *SHAPE), torch.zeros(8)), 0)


def test_weight_clipping_is_applied_after_every_critic_step():
    module = make_module(weight_clip=0.01, loss=WassersteinLoss())
    attach_trainer(module)
    module.discriminator_step(torch.randn(4, *SHAPE), module.optimizers()[1])
    assert max(p.abs().max().item() for p in module.discriminator.parameters()) <= 0.01


def test_ema_follows_the_exponential_moving_average_formula():
    decay = 0.9
    module = make_module(ema_decay=decay)
    attach_trainer(module)
    opt_g = module.optimizers()[0]
    module.generator_step(torch.randn(4, *SHAPE), opt_g)
    module.update_ema()  # first update copies the weights
    expected = params(module.generator)
    assert all(torch.equal(a, b) for a, b in zip(expected, module.generator_ema.module.parameters()))
    for _ in range(3):
        module.generator_step(torch.randn(4, *SHAPE), opt_g)
        current = params(module.generator)
        expected = [decay * e + (1 - decay) * c for e, c in zip(expected, current)]
        module.update_ema()
    for e, p in zip(expected, module.generator_ema.module.parameters()):
        assert torch.allclose(e, p, atol=1e-6)
    assert module.sampling_generator is module.generator_ema.module
    assert not any(p.requires_grad for p in module.generator_ema.parameters())


def test_ema_waits_for_its_start_step():
    module = make_module(ema_decay=0.5, ema_start=2)
    attach_trainer(module)
    opt_g = module.optimizers()[0]
    initial = params(module.generator_ema.module)
    module.generator_step(torch.randn(4, *SHAPE), opt_g)
    module.update_ema()
    assert not any(changed(initial, module.generator_ema.module))
    # the average is still the untrained copy: samples and metrics come from the raw generator
    assert module.sampling_generator is module.generator
    module.generator_step(torch.randn(4, *SHAPE), opt_g)
    module.update_ema()  # step 2: first real update copies the generator
    assert all(torch.equal(a, b) for a, b in zip(module.generator.parameters(), module.generator_ema.module.parameters()))
    assert module.sampling_generator is module.generator_ema.module


def test_fixed_noise_is_a_saved_buffer_and_counters_round_trip():
    module = make_module()
    assert "fixed_noise" in module.state_dict()
    assert torch.equal(make_module().fixed_noise, module.fixed_noise)  # seeded, independent of the global RNG
    module.generator_steps, module.discriminator_steps = 7, 35
    checkpoint = {}
    module.on_save_checkpoint(checkpoint)
    restored = make_module()
    restored.on_load_checkpoint(checkpoint)
    assert (restored.generator_steps, restored.discriminator_steps) == (7, 35)


@pytest.mark.parametrize("option,value,message", [
    # a negative clip bound clamped every D weight to it (torch.clamp with min > max), silently
    ("weight_clip", -0.01, "model.weight_clip=-0.01: expected a number > 0, or null (no clipping)"),
    ("weight_clip", 0.0, "model.weight_clip=0.0: expected a number > 0, or null (no clipping)"),
    # a negative weight turned feature matching off (the module adds it only when > 0), silently
    ("feature_matching_weight", -1.0, "model.feature_matching_weight=-1.0: expected a number >= 0"),
    ("auxiliary_weight", -1.0, "model.auxiliary_weight=-1.0: expected a number >= 0"),
    ("ema_start", -1, "model.ema_start=-1: expected an integer >= 0"),
])
def test_negative_weights_and_bounds_are_refused(option, value, message):
    from gan.utils.errors import ConfigError

    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        make_module(**{option: value})
    assert make_module(weight_clip=0.01, feature_matching_weight=0.0, ema_start=0).weight_clip == 0.01


def test_invalid_n_critic_is_rejected():
    with pytest.raises(ValueError, match="n_critic must be a positive integer, got 0"):
        make_module(n_critic=0)


def test_optimizer_options_set_to_null_are_left_at_the_optimizer_default():
    """How a per-data preset turns the SGD of model=gan into Adam: momentum: null."""
    adam = partial(torch.optim.Adam, lr=1e-3, betas=(0.8, 0.999), momentum=None)
    module = make_module(optimizer={"generator": adam, "discriminator": adam})
    opt_g, opt_d = module.configure_optimizers()
    assert isinstance(opt_g, torch.optim.Adam) and opt_g.defaults["betas"] == (0.8, 0.999)
    with pytest.raises(TypeError, match="momentum"):
        adam(params=module.generator.parameters())  # unfiltered, Adam refuses it


def test_an_optimizer_eps_of_zero_is_warned_about_with_its_reason(caplog):
    import logging

    zero = partial(torch.optim.RMSprop, lr=1e-3, eps=0.0)
    with caplog.at_level(logging.WARNING, logger="gan"):
        make_module(optimizer={"generator": partial(torch.optim.Adam, lr=1e-3), "discriminator": zero}).configure_optimizers()
    warned = [r.getMessage() for r in caplog.records if "eps=0" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("optimizer.discriminator.eps=0: RMSprop divides each update")
    # the reason it gives: a weight whose gradient is exactly 0 becomes 0 / 0 at its first step
    weight = torch.nn.Parameter(torch.ones(2))
    step = zero(params=[weight])
    weight.grad = torch.tensor([0.0, 1.0])
    step.step()
    assert weight[0].isnan() and weight[1].isfinite()


def trainer_with(**options) -> Trainer:
    return Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, **options)


def fp16_with_scaler():
    """What ``precision=16-mixed`` builds on a GPU (Lightning refuses that flag on a CPU)."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    return MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))


def test_backward_skips_lightning_only_where_it_would_add_nothing():
    from lightning.pytorch import Callback

    from gan.module import lightning_backward_is_plain

    class WatchesBackward(Callback):
        def on_before_backward(self, trainer, pl_module, loss):
            pass

    module = make_module()
    trainer = attach_trainer(module)
    assert lightning_backward_is_plain(trainer, module)  # one CPU device, 32-bit, no backward hooks
    trainer.callbacks.append(WatchesBackward())
    assert not lightning_backward_is_plain(trainer, module)
    assert lightning_backward_is_plain(trainer_with(precision="bf16-mixed"), module)  # no loss scaler
    assert not lightning_backward_is_plain(trainer_with(plugins=[fp16_with_scaler()]), module)  # scales the loss
    # both paths give the same gradients
    grads = []
    for plain in (True, False):
        module.discriminator.zero_grad(set_to_none=True)
        module._plain_backward = plain
        torch.manual_seed(3)
        module.backward_pass(module.discriminator(torch.randn(4, *SHAPE)).mean())
        grads.append([p.grad.clone() for p in module.discriminator.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads))


def test_optimizer_step_skips_lightning_only_where_it_would_add_nothing():
    """The plain step is taken on one device in 32 bits or bf16-mixed without a profiler, gradient clipping or
    a module hook on the step (tests/test_train.py checks that both paths train alike)."""
    from gan.module import lightning_step_is_plain

    class HooksTheStep(type(make_module())):
        def on_before_optimizer_step(self, optimizer):
            pass

    module = make_module()
    assert lightning_step_is_plain(trainer_with(), module)
    assert not lightning_step_is_plain(trainer_with(profiler="simple"), module)
    assert not lightning_step_is_plain(trainer_with(gradient_clip_val=1.0), module)
    assert lightning_step_is_plain(trainer_with(precision="bf16-mixed"), module)  # no scaler to step through
    assert not lightning_step_is_plain(trainer_with(plugins=[fp16_with_scaler()]), module)
    assert not lightning_step_is_plain(trainer_with(), HooksTheStep.__new__(HooksTheStep))


@pytest.mark.parametrize("n_critic,n_generator", [(2, 1), (1, 2)])
def test_under_autocast_every_phase_runs_the_weights_of_the_last_update(n_critic, n_generator):
    """An iteration holds several optimizer steps inside the training step's one autocast context. autocast can
    keep the bf16 copy of each weight it cast for the rest of its context (torch's default, ``cache_enabled``),
    and an in-place update does not refresh that copy: the second critic or generator step would run the weights
    from before the first. Lightning opens its context with the cache off; this guards that every linear and
    convolution of G and D runs the current weights (the same output as with the cache off)."""
    from torch.utils.data import DataLoader, TensorDataset

    sgd = partial(torch.optim.SGD, lr=0.5)  # large steps: stale weights would change every output
    module = make_module(n_critic=n_critic, n_generator=n_generator, optimizer={"generator": sgd, "discriminator": sgd})
    compared = []

    def matches_a_fresh_cast(layer, inputs, output):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
            fresh = layer.forward(*inputs)
        compared.append(torch.equal(output.detach(), fresh))

    layers = [m for network in (module.generator, module.discriminator) for m in network.modules()
              if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    for layer in layers:
        layer.register_forward_hook(matches_a_fresh_cast)
    batch = 4 * module.real_batches_per_iteration
    data = TensorDataset(torch.randn(2 * batch, *SHAPE), torch.zeros(2 * batch))
    trainer_with(precision="bf16-mixed", max_steps=2 * (n_critic + n_generator)).fit(module, DataLoader(data, batch_size=batch))
    assert module.generator_steps == 2 * n_generator
    assert len(compared) > 2 * (n_critic + n_generator) * len(layers) // 2 and all(compared)


@pytest.mark.parametrize("overrides, warned", [
    (["model=dcgan", "loss=wasserstein"], True),  # nothing keeps the critic Lipschitz
    (["model=wgan"], False),  # weight clipping
    (["model=wgan_gp"], False),  # the gradient penalty
    (["model=sngan", "loss=wasserstein"], False),  # spectral norm
    (["model=dcgan"], False),  # not the Wasserstein loss
    # LeCam anchors D's scores to their averages but does not bound its slope: it silenced the warning (a review)
    (["model=dcgan", "loss=wasserstein", "+model.penalties.lecam={_target_:gan.losses.LeCamPenalty}"], True),
    (["model=wgan_gp", "model.penalties.gradient_penalty.weight=0"], True),  # no constraint left (an audit)
    # a schedule that takes the penalty's weight to 0 leaves the critic unconstrained from there (an audit)
    (["model=wgan_gp", "+model.schedules.w={_target_:gan.schedules.PenaltySetting,penalty:gradient_penalty,attribute:weight,"
      "value:{_target_:gan.schedules.Linear,start:10,end:0,steps:100}}"], "scheduled"),
    (["model=wgan_gp", "+model.schedules.w={_target_:gan.schedules.PenaltySetting,penalty:gradient_penalty,attribute:weight,"
      "value:{_target_:gan.schedules.Linear,start:10,end:1,steps:100}}"], False),
    # the schedule sets the weight before the first step: a static 0 under it never acts (a review)
    (["model=wgan_gp", "model.penalties.gradient_penalty.weight=0", "+model.schedules.w={_target_:gan.schedules.PenaltySetting,"
      "penalty:gradient_penalty,attribute:weight,value:{_target_:gan.schedules.Linear,start:10,end:1,steps:100}}"], False),
])
def test_a_wasserstein_critic_without_a_constraint_is_warned_about(make_cfg, caplog, overrides, warned):
    from gan.utils.instantiate import build_module

    with caplog.at_level("WARNING", logger="gan"):
        build_module(make_cfg(overrides + ["data=toy2d_grid", "presets=none"]))
    said = [r.getMessage() for r in caplog.records if "unconstrained critic" in r.getMessage()]
    which = " whose weight stays above 0 (a schedule takes model.penalties.gradient_penalty's to 0)" if warned == "scheduled" else ""
    assert said == ([
        f"loss=wasserstein with an unconstrained critic (no model.weight_clip, no gradient penalty in model.penalties{which}, "
        "no spectral norm): its scores can grow without bound, so the loss is no distance estimate and the run tends to diverge; "
        "use model=wgan (weight clipping) or model=wgan_gp (gradient penalty), or add one"] if warned else [])


def test_compile_leaves_the_discriminator_eager_only_for_a_penalty_on_its_input_gradients(make_cfg, caplog, monkeypatch):
    """A double backward cannot go through a compiled graph; LeCam needs none, and left D eager with a false warning
    (a review). nn.Module.compile is recorded, not run."""
    from gan.utils.instantiate import build_module, compile_networks

    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda net, *a, **k: compiled.append(type(net).__name__))
    lecam = "+model.penalties.lecam={_target_:gan.losses.LeCamPenalty}"
    for overrides, eager in ((["model=dcgan", lecam], False), (["model=wgan_gp"], True), (["model=dcgan"], False)):
        compiled.clear()
        caplog.clear()
        module = build_module(make_cfg(overrides + ["data=toy2d_grid", "presets=none"]))
        with caplog.at_level("WARNING", logger="gan"):
            compile_networks(module)
        assert compiled == [type(module.generator).__name__] + ([] if eager else [type(module.discriminator).__name__])
        assert any("stays eager" in r.getMessage() for r in caplog.records) == eager


def test_the_fixed_grid_cycles_classes_and_reuses_codes_column_by_column():
    """sample_fixed's labels and codes (mutations of either modulo, and of the noise seed, survived)."""
    generator = DCGANGenerator(8, SHAPE, width=4, num_classes=3)
    module = make_module(generator=generator, discriminator=DCGANDiscriminator(SHAPE, width=4, num_classes=3),
                         num_fixed_samples=4, fixed_noise_seed=7)
    assert torch.equal(module.fixed_noise, torch.randn(4, 8, generator=torch.Generator().manual_seed(7)))
    assert not torch.equal(module.fixed_noise, make_module(num_fixed_samples=4, fixed_noise_seed=0).fixed_noise)
    seen = []
    generator.register_forward_pre_hook(lambda net, inputs: seen.append(inputs))
    module.sample_fixed(5)  # 4 codes: classes 0, 1, 2, 0
    z, labels = seen[-1]
    assert torch.equal(z, module.fixed_noise) and labels.tolist() == [0, 1, 2, 0]
    module.sample_fixed(2, labels=torch.tensor([0, 0, 1, 1, 2, 2]))  # 2 codes x 3 classes: the codes repeat
    z, labels = seen[-1]
    assert torch.equal(z, module.fixed_noise[[0, 1, 0, 1, 0, 1]]) and labels.tolist() == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("relativistic", [False, True])
def test_each_generator_step_trains_on_the_real_batch_the_docstring_names(relativistic):
    # (a mutation audit) the G step took the iteration's first real batch instead of the last D step's: its size,
    # labels and feature-matching reals came from a batch the critic had already moved on from
    from gan.losses.adversarial import RelativisticLoss
    module = make_module(n_critic=3, n_generator=2, **({"loss": RelativisticLoss()} if relativistic else {}))
    attach_trainer(module)
    seen = []
    original = module.generator_step
    module.generator_step = lambda real, *a, **k: seen.append(real.clone()) or original(real, *a, **k)
    real = torch.randn(4 * module.real_batches_per_iteration, *SHAPE)
    chunks = real.chunk(module.real_batches_per_iteration)
    module.training_step((real, torch.zeros(len(real))), 0)
    # a loss that compares with reals: a fresh batch per G step (chunks 3 and 4); otherwise the last D step's (chunk 2)
    expected = [chunks[3], chunks[4]] if relativistic else [chunks[2], chunks[2]]
    assert len(seen) == 2 and all(torch.equal(a, b) for a, b in zip(seen, expected))


def test_schedules_set_every_iteration_from_the_generator_step_it_starts_at():
    # (a mutation audit) the schedules read generator_steps + 1: every update ran one step ahead of its curve
    from gan.schedules import Linear, OptimizerSetting
    module = make_module(n_generator=2, schedules={"lr": OptimizerSetting("lr", Linear(1e-2, 0.0, 8))})
    attach_trainer(module)
    opt_g, opt_d = module.optimizers()
    used = []
    for opt, name in ((opt_g, "G"), (opt_d, "D")):
        original = opt.step
        opt.step = lambda *a, _o=original, _n=name, _opt=opt, **k: used.append((_n, _opt.param_groups[0]["lr"])) or _o(*a, **k)
    for i in range(3):
        module.training_step((torch.randn(4, *SHAPE), torch.zeros(4)), i)
        # the value set before the iteration, at generator step 2 i: 1e-2 * (1 - 2 i / 8)
        expected = 1e-2 * (1 - 2 * i / 8)
        assert module.last_terms["train/schedule/lr"] == pytest.approx(expected)
    assert [n for n, _ in used] == ["D", "G", "G"] * 3
    assert [lr for _, lr in used] == pytest.approx([1e-2 * (1 - 2 * i / 8) for i in range(3) for _ in range(3)])


def test_weight_clipping_follows_every_critic_step_of_an_iteration():
    # (a mutation audit) clipping only after the diagnostics step (the last of n_critic) let the earlier critic
    # updates run on unclipped weights
    module = make_module(weight_clip=0.01, loss=WassersteinLoss(), n_critic=3)
    attach_trainer(module)
    largest = []
    original = module.discriminator_step

    def spy(*a, **k):
        terms = original(*a, **k)
        largest.append(max(p.abs().max().item() for p in module.discriminator.parameters()))
        return terms

    module.discriminator_step = spy
    module.training_step((torch.randn(12, *SHAPE), torch.zeros(12)), 0)
    assert len(largest) == 3 and all(value <= 0.01 for value in largest)


@pytest.mark.parametrize("ema_start", [0, 1])
def test_the_ema_is_updated_after_every_generator_step_of_an_iteration(ema_start):
    # (a mutation audit) one EMA update per iteration (after the n_generator loop), or one before each G step,
    # averaged other weights than the formula's: ema_k = decay ema_{k-1} + (1 - decay) weights after G step k
    decay = 0.5
    module = make_module(n_generator=3, ema_decay=decay, ema_start=ema_start)
    attach_trainer(module)
    after = []
    original = module.generator_step
    module.generator_step = lambda *a, **k: (original(*a, **k), after.append(params(module.generator)))[0]
    module.training_step((torch.randn(4, *SHAPE), torch.zeros(4)), 0)
    assert len(after) == 3
    # generator_steps is 1, 2, 3 after the steps: the first one at or past ema_start copies the weights
    first = ema_start - 1 if ema_start > 0 else 0
    expected = after[first]
    for current in after[first + 1:]:
        expected = [decay * e + (1 - decay) * c for e, c in zip(expected, current)]
    for e, p in zip(expected, module.generator_ema.module.parameters()):
        assert torch.allclose(e, p, atol=1e-6)


def test_ada_observes_the_reals_of_every_critic_step():
    # (a mutation audit) ADA observing only the diagnostics step (the last of n_critic) steered p from a third of
    # the reals, and its interval (in D steps) stretched n_critic-fold
    from gan.augment import AdaptiveAugment
    module = make_module(augment=AdaptiveAugment(interval=100), n_critic=3)
    attach_trainer(module)
    module.training_step((torch.randn(12, *SHAPE), torch.zeros(12)), 0)
    assert module.augment.steps.item() == 3 and module.augment.images.item() == 12


def test_the_auxiliary_classifier_loss_of_the_critic_step_covers_reals_and_fakes():
    # (a mutation audit) AC-GAN's D class loss without the fakes' cross-entropy (Odena et al. 2017: L_C on both)
    import torch.nn.functional as F
    module = make_module(generator=DCGANGenerator(8, SHAPE, width=4, num_classes=3),
                         discriminator=DCGANDiscriminator(SHAPE, width=4, num_classes=3, conditioning="auxiliary"),
                         optimizer={"generator": partial(torch.optim.SGD, lr=0.0), "discriminator": partial(torch.optim.SGD, lr=0.0)},
                         auxiliary_weight=2.0)
    attach_trainer(module)
    generated = []
    module.generator.register_forward_hook(lambda net, args, out: generated.append(out.detach().clone()))
    real, labels = torch.randn(6, *SHAPE), torch.tensor([0, 1, 2, 2, 1, 0])
    terms = module.discriminator_step(real, module.optimizers()[1], labels)
    with torch.no_grad():  # lr 0: D is as it was; train mode normalises with each batch's own statistics
        real_cls, fake_cls = (module.discriminator.evaluate(x, None).class_logits for x in (real, generated[0]))
    expected = F.cross_entropy(real_cls, labels) + F.cross_entropy(fake_cls, labels)
    assert terms["class_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert terms["loss"].item() == pytest.approx(terms["adversarial"].item() + 2.0 * expected.item(), rel=1e-5)


class RecordingLogger(Logger):
    """A Lightning logger keeping every row it is given."""

    name, version = "recording", 0

    def __init__(self):
        super().__init__()
        self.rows = []

    def log_metrics(self, metrics, step=None):
        self.rows.append(dict(metrics))

    def log_hyperparams(self, *args, **kwargs):
        pass


@pytest.mark.parametrize("log_every, logged_at", [(2, [2, 4, 5]), (0, [5])])
def test_terms_are_logged_on_logging_steps_and_at_the_last_iteration(log_every, logged_at):
    # (a mutation audit) logging only where Lightning's logger connector says so lost the last iteration's values with
    # log_every_n_steps=0 (they never reached trainer.callback_metrics); logging every step paid self.log each iteration
    from torch.utils.data import DataLoader, TensorDataset
    module = make_module(iterations_per_batch=1)
    data = DataLoader(TensorDataset(torch.randn(40, *SHAPE), torch.zeros(40)), batch_size=4)
    trainer = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, max_steps=10, log_every_n_steps=log_every)  # 5 iterations (D + G each)
    calls = []
    original = module.log_dict
    module.log_dict = lambda values, *a, **k: calls.append(module.generator_steps) or original(values, *a, **k)
    trainer.fit(module, data)
    assert module.generator_steps == 5 and calls == logged_at
    for name in ("train/d/loss", "train/g/loss"):
        assert torch.equal(trainer.callback_metrics[name], module.last_terms[name])


def test_the_discriminator_takes_no_gradient_in_the_generator_phase_of_a_fit():
    # (a mutation audit) the freezing built when training starts froze nothing: every G backward also accumulated
    # d loss_G / d theta_D into D's .grad, work for nothing and a wrong gradient for anything reading D's grads
    from torch.utils.data import DataLoader, TensorDataset
    module = make_module(iterations_per_batch=1)
    data = DataLoader(TensorDataset(torch.randn(16, *SHAPE), torch.zeros(16)), batch_size=4)
    trainer = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, max_steps=6)
    unchanged = []
    original = module.generator_step

    def spy(*a, **k):
        before = [None if p.grad is None else p.grad.clone() for p in module.discriminator.parameters()]
        frozen_inside = []
        hook = module.discriminator.register_forward_pre_hook(
            lambda net, args: frozen_inside.append(not any(p.requires_grad for p in net.parameters())))
        try:
            terms = original(*a, **k)
        finally:
            hook.remove()
        after = [p.grad for p in module.discriminator.parameters()]
        same = [(b is None and g is None) or (b is not None and g is not None and torch.equal(b, g)) for b, g in zip(before, after)]
        unchanged.append(all(frozen_inside) and all(same))
        return terms

    module.generator_step = spy
    trainer.fit(module, data)
    assert unchanged == [True] * 3
    assert all(p.requires_grad for p in module.discriminator.parameters())  # restored after each G phase


def test_the_last_iteration_s_terms_reach_the_loggers_off_the_logging_cadence():
    # (a mutation audit) without asking training to stop at max_steps, Lightning wrote the last batch's values only to
    # trainer.callback_metrics, never to the loggers: a run's final losses were missing from its CSV and W&B
    from torch.utils.data import DataLoader, TensorDataset

    logger = RecordingLogger()
    module = make_module(iterations_per_batch=1)
    data = DataLoader(TensorDataset(torch.randn(40, *SHAPE), torch.zeros(40)), batch_size=4)
    trainer = Trainer(accelerator="cpu", logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, max_steps=6, log_every_n_steps=50)  # 3 iterations, none on the cadence
    trainer.fit(module, data)
    rows = [row for row in logger.rows if "train/g/loss" in row]
    assert len(rows) == 1 and rows[0]["train/generator_step"] == 3
    assert rows[0]["train/g/loss"] == pytest.approx(module.last_terms["train/g/loss"].item())


@pytest.mark.parametrize("iterations_per_batch, log_every, stop_after, logged_steps", [
    (1, 2, 5, [2, 4, 5]),  # stopped off the cadence: its own row, after the cadence's
    (1, 2, 4, [2, 4]),  # stopped on it: the row logged there, once
    (1, 50, 3, [3]),  # stopped before the first logging step: still a row (there was none)
    (2, 4, 6, [4, 6]),  # two iterations a batch, logging every 4: stopped at the batch end of step 6
])
def test_a_stop_asked_at_a_batch_end_logs_the_terms_of_that_batch(iterations_per_batch, log_every, stop_after, logged_steps):
    """trainer.max_time's Timer asks to stop in its on_train_batch_end, after training_step: Lightning then wrote the
    values of the last logging step as the last row (an audit: a max_time run's CSV repeated step 50's losses as step
    60's, and one stopped before step 50 wrote none). A callback stopping as the Timer does, at a chosen step."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, TensorDataset

    class StopAt(pl.Callback):  # what lightning.pytorch.callbacks.Timer does when the time is up
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if pl_module.generator_steps >= stop_after:
                trainer.should_stop = True

    logger = RecordingLogger()
    module = make_module(iterations_per_batch=iterations_per_batch)
    data = DataLoader(TensorDataset(torch.randn(80, *SHAPE), torch.zeros(80)), batch_size=4 * iterations_per_batch)
    trainer = Trainer(accelerator="cpu", logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, max_steps=40, log_every_n_steps=log_every, callbacks=[StopAt()])
    trainer.fit(module, data)
    rows = [row for row in logger.rows if "train/g/loss" in row]
    assert module.generator_steps == stop_after and [row["train/generator_step"] for row in rows] == logged_steps
    assert rows[-1]["train/g/loss"] == pytest.approx(module.last_terms["train/g/loss"].item())
    assert rows[-1]["train/d/loss"] == pytest.approx(module.last_terms["train/d/loss"].item())


def test_a_stop_lightning_does_not_honour_yet_leaves_the_later_rows_their_own_values():
    """Below trainer.min_steps Lightning trains on after a stop was asked: a value logged from the batch-end hook outlived
    its batch in Lightning's results and was written over every later row's own (a review)."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, TensorDataset

    class StopAt3(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if pl_module.generator_steps >= 3:
                trainer.should_stop = True

    logger, losses = RecordingLogger(), {}
    module = make_module(iterations_per_batch=1)
    original = module.train_iteration

    def recording_iteration(*args, **kwargs):
        original(*args, **kwargs)
        losses[module.generator_steps] = module.last_terms["train/g/loss"].item()

    module.train_iteration = recording_iteration
    data = DataLoader(TensorDataset(torch.randn(80, *SHAPE), torch.zeros(80)), batch_size=4)
    trainer = Trainer(accelerator="cpu", logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, max_steps=40, min_steps=16, log_every_n_steps=2, callbacks=[StopAt3()])
    trainer.fit(module, data)
    rows = [row for row in logger.rows if "train/g/loss" in row]
    # Lightning never honours it here (min_steps sets min_epochs to 1, and the data is one endless epoch): max_steps
    # ends the run, and while the stop stays asked every batch is a logging step. (The batch that asked first, step
    # 3, is written with step 2's values by Lightning: its stop is not honoured, so the hook leaves it.)
    assert module.generator_steps == 20
    assert [(row["train/generator_step"], row["train/g/loss"]) for row in rows[2:]] == [
        (step, pytest.approx(losses[step])) for step in range(4, 21)]
