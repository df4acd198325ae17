"""Every model x data composes; variants pick their loss/optimizer; command-line groups still win."""
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gan.losses import HingeLoss, LeastSquaresLoss, NonSaturatingLoss, WassersteinLoss
from gan.schedules import parts_beyond_the_run
from gan.utils.config import PROJECT_ROOT, check_groups_of_objects, check_metrics_options
from gan.utils.instantiate import build_module
from gan.utils.option_types import check_option_types
from tests.conftest import DATASETS, MODELS

CORE_DATA = ["digits", "toy2d_ring", "toy2d_grid"]


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("model", MODELS)
def test_every_model_and_data_compose(make_cfg, model, data):
    cfg = make_cfg([f"model={model}", f"data={data}", "logger=none"])
    check_option_types(cfg)  # no option's type is refused (gan/utils/option_types.py)
    check_groups_of_objects(cfg)  # every callback, optimizer, penalty and schedule entry is an object's config
    check_metrics_options(cfg)
    assert cfg.model._target_ == "gan.module.GANModule"
    assert cfg.trainer.max_steps == cfg.generator_steps * (cfg.model.n_critic + 1)
    assert list(cfg.model.generator.sample_shape) == list(cfg.data.sample_shape)


@pytest.mark.parametrize("data", CORE_DATA)
@pytest.mark.parametrize("model", MODELS)
def test_every_model_builds_for_its_data(make_cfg, model, data):
    cfg = make_cfg([f"model={model}", f"data={data}", "logger=none"])
    module = build_module(cfg)
    instantiate(cfg.data).check_sample_shape(module.generator.sample_shape)


@pytest.mark.parametrize(
    "model,loss,lrs,n_critic",
    [
        ("gan", NonSaturatingLoss, (0.1, 0.1), 1),
        ("dcgan", NonSaturatingLoss, (2e-4, 2e-4), 1),
        ("wgan", WassersteinLoss, (5e-5, 5e-5), 5),
        ("wgan_gp", WassersteinLoss, (1e-4, 1e-4), 5),
        ("lsgan", LeastSquaresLoss, (2e-4, 2e-4), 1),
        ("sngan", HingeLoss, (2e-4, 2e-4), 1),
    ],
)
def test_variant_picks_its_published_defaults(make_cfg, model, loss, lrs, n_critic):
    cfg = make_cfg([f"model={model}", "logger=none", "presets=none"])  # dcgan's digits preset changes its Adam
    module = build_module(cfg)
    assert type(module.loss) is loss
    opt_g, opt_d = module.configure_optimizers()
    assert (opt_g.defaults["lr"], opt_d.defaults["lr"]) == lrs
    assert module.n_critic == n_critic


def test_published_details_of_the_critics(make_cfg):
    wgan = build_module(make_cfg(["model=wgan", "logger=none"]))
    assert wgan.weight_clip == 0.01
    gp = build_module(make_cfg(["model=wgan_gp", "logger=none"]))
    assert gp.penalties.gradient_penalty.weight == 10.0
    assert gp.configure_optimizers()[1].defaults["betas"] == (0.0, 0.9)
    import torch

    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in gp.discriminator.modules())
    sn = build_module(make_cfg(["model=sngan", "logger=none"]))
    assert all(hasattr(m, "parametrizations") for m in sn.discriminator.modules() if isinstance(m, torch.nn.Conv2d))
    lsgan = build_module(make_cfg(["model=lsgan", "logger=none"]))
    assert (lsgan.loss.a, lsgan.loss.b, lsgan.loss.c) == (0.0, 1.0, 1.0)


def test_command_line_groups_override_the_variant(make_cfg):
    module = build_module(make_cfg(["model=dcgan", "loss=least_squares", "optimizer=ttur", "loss.a=-1", "logger=none",
                                    "presets=none"]))
    assert isinstance(module.loss, LeastSquaresLoss) and module.loss.a == -1.0
    opt_g, opt_d = module.configure_optimizers()
    assert (opt_g.defaults["lr"], opt_d.defaults["lr"]) == (1e-4, 4e-4)


def test_minimax_objective_is_a_loss_choice(make_cfg):
    module = build_module(make_cfg(["model=gan", "loss=minimax", "logger=none"]))
    assert type(module.loss).__name__ == "MinimaxLoss"


def test_the_default_run_is_r3gan_with_its_digits_preset(make_cfg):
    """`make train` (r3gan on digits) trains with conf/preset/tuned/r3gan/digits.yaml: the DCGAN-layout nets
    without normalization and the learning rate 2e-3 -> 5e-4; presets=none is the paper's recipe and networks."""
    from gan.nets import DCGANGenerator
    from gan.schedules import Cosine

    tuned_cfg = make_cfg(["logger=none"])
    tuned, paper = build_module(tuned_cfg), build_module(make_cfg(["logger=none", "presets=none"]))
    assert tuned_cfg.model._target_ == make_cfg(["model=r3gan", "logger=none"]).model._target_
    assert tuned_cfg.generator_steps == 1500 and tuned_cfg.data.batch_size == 64
    assert isinstance(tuned.generator, DCGANGenerator) and not isinstance(paper.generator, DCGANGenerator)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in tuned.modules())
    for module, (start, end) in ((tuned, (2e-3, 5e-4)), (paper, (2e-4, 5e-5))):
        lr = module.schedules["lr"].value
        assert isinstance(lr, Cosine) and (lr.start, lr.end) == (start, end)
        assert module.generator_ema is not None and set(module.penalties) == {"r1r2"}


def test_dcgan_on_the_digits_takes_its_digits_preset(make_cfg):
    """model=dcgan on the digits (the default run until 2026-12-02) trains with conf/preset/tuned/dcgan/digits.yaml."""
    tuned = build_module(make_cfg(["model=dcgan", "logger=none"]))
    paper = build_module(make_cfg(["model=dcgan", "logger=none", "presets=none"]))
    for module, lr, betas, ema in ((tuned, 1e-3, (0.5, 0.99), True), (paper, 2e-4, (0.5, 0.999), False)):
        for optimizer in module.configure_optimizers():
            assert optimizer.defaults["lr"] == lr and tuple(optimizer.defaults["betas"]) == betas
        assert (module.generator_ema is not None) == ema


@pytest.mark.parametrize("data", ["digits", "mnist"])
def test_cgan_on_digits_embeds_its_label_in_z(make_cfg, data):
    """Conditional batch norm left the generator ignoring its labels at the digits' budget (an audit: class_accuracy
    0.25 at 1,500 steps); the digits preset embeds the label in z, the paper setting keeps conditional batch norm."""
    from gan.nets.layers import ConditionalBatchNorm

    tuned = build_module(make_cfg(["model=cgan", f"data={data}", "logger=none"])).generator
    paper = build_module(make_cfg(["model=cgan", f"data={data}", "logger=none", "presets=none"])).generator
    assert tuned.conditioning == "embedding" and not any(isinstance(m, ConditionalBatchNorm) for m in tuned.modules())
    assert paper.conditioning == "batchnorm" and any(isinstance(m, ConditionalBatchNorm) for m in paper.modules())


def test_a_group_chosen_under_a_preset_is_named(make_cfg):
    """optimizer=ttur with dcgan on the digits: the preset's learning rates win (it is composed later), so the
    run says which values replace the chosen group's, and nothing is said without a preset or a group choice."""
    from gan.utils.config import groups_under_a_preset, preset_values

    lines = groups_under_a_preset("tuned/dcgan/digits", ["optimizer=ttur", "seed=3", "optimizer.generator.lr=1e-4"])
    assert len(lines) == 1 and "optimizer=ttur" in lines[0] and "presets=none" in lines[0]
    assert "optimizer.generator.lr" in lines[0] and "optimizer.discriminator.betas" in lines[0]
    # the composed run agrees with the warning: ttur's 1e-4 / 4e-4 are replaced
    opt_g, opt_d = build_module(make_cfg(["model=dcgan", "optimizer=ttur", "logger=none"])).configure_optimizers()
    assert (opt_g.defaults["lr"], opt_d.defaults["lr"]) == (1e-3, 1e-3)
    assert groups_under_a_preset(None, ["optimizer=ttur"]) == []
    assert groups_under_a_preset("tuned/wgan_gp/digits", ["optimizer=ttur"]) == []  # the optional preset is absent
    assert groups_under_a_preset("tuned/dcgan/digits", ["callbacks=none", "loss=hinge"]) == []  # sets no loss values
    # values of included presets count, and a preset's own values win over them: r3gan's digits preset includes
    # its Stacked MNIST one and sets its own budget; mnist's includes the digits' (two levels); fashion_mnist's
    # includes Stacked MNIST's and keeps the paper's learning rate
    stacked = preset_values("tuned/r3gan/stacked_mnist")
    assert stacked.generator_steps == 6000 and stacked.model.schedules.lr.value.start == 2e-3
    for data, steps in (("digits", 1500), ("mnist", 3000)):
        values = preset_values(f"tuned/r3gan/{data}")
        assert values.data.batch_size == stacked.data.batch_size
        assert values.model.schedules.gamma.value.start == stacked.model.schedules.gamma.value.start
        assert values.model.schedules.lr.value.start == 2e-3 and values.generator_steps == steps
    fashion = preset_values("tuned/r3gan/fashion_mnist")
    assert fashion.generator_steps == 3000 and fashion.model.schedules.lr.value == {"start": 2e-4, "end": 5e-5}
    assert fashion.model.schedules.gamma.value.start == stacked.model.schedules.gamma.value.start


def test_an_optimizer_option_a_schedule_overwrites_is_named(make_cfg):
    """r3gan schedules lr and beta2 on both optimizers at every generator step: an optimizer option set on the
    command line for them would silently do nothing, so the run says so (train.py logs these lines)."""
    from gan.utils.config import options_under_a_schedule

    schedules = make_cfg(["logger=none"]).model.schedules  # the default run: r3gan
    lr, = options_under_a_schedule(schedules, ["optimizer.generator.lr=1e-3", "seed=3", "optimizer.generator.eps=1e-6"])
    assert "model.schedules.lr" in lr and "optimizer.generator.lr=1e-3" in lr and "model.schedules.lr=null" in lr
    beta2, = options_under_a_schedule(schedules, ["++optimizer.discriminator.betas=[0.0,0.999]"])
    assert "model.schedules.beta2" in beta2 and "optimizer.discriminator.betas" in beta2
    assert len(options_under_a_schedule(schedules, ["optimizer=ttur"])) == 2  # the group's lr and betas
    assert options_under_a_schedule(None, ["optimizer.generator.lr=1e-3"]) == []
    no_lr_schedule = make_cfg(["logger=none", "model.schedules.lr=null"]).model.schedules
    assert options_under_a_schedule(no_lr_schedule, ["optimizer.generator.lr=1e-3"]) == []
    assert options_under_a_schedule(make_cfg(["model=dcgan", "logger=none"]).model.get("schedules"),
                                    ["optimizer.generator.lr=1e-3"]) == []
    # one schedule per network for one hyperparameter (sngan's toy preset): the second hid the first
    from omegaconf import OmegaConf

    setting = lambda network: {"_target_": "gan.schedules.OptimizerSetting", "hyperparameter": "lr",  # noqa: E731
                               "networks": [network], "value": {"_target_": "gan.schedules.Cosine", "start": 1e-3,
                                                                "end": 1e-4, "steps": 10}}
    apart = OmegaConf.create({"lr_d": setting("discriminator"), "lr_g": setting("generator")})
    d_line, = options_under_a_schedule(apart, ["optimizer.discriminator.lr=1e-3"])
    g_line, = options_under_a_schedule(apart, ["optimizer.generator.lr=1e-3"])
    assert d_line.startswith("model.schedules.lr_d sets lr of the discriminator optimizer at every generator step")
    assert g_line.startswith("model.schedules.lr_g sets lr of the generator optimizer at every generator step")


@pytest.mark.parametrize("data", ["toy2d_grid", "toy2d_ring"])
def test_gan_on_the_toys_is_r3gans_recipe_with_the_gan_loss(make_cfg, data):
    """model=gan on a 2D toy: the non-saturating loss with r3gan's toy recipe (R1 + R2, schedules, EMA,
    Adam beta1 = 0) and the same layers, built by gan's own MLP classes: seeded alike, both networks start
    with the same weights and give the same outputs (so the two presets differ by their loss alone; and on the
    grid by r3gan's learning-rate cool-down over the last 8,000 steps, added after gan's rows were measured)."""
    gan_cfg = make_cfg(["model=gan", f"data={data}", "logger=none"])
    r3gan_cfg = make_cfg(["model=r3gan", f"data={data}", "logger=none"])
    assert gan_cfg.loss._target_ == "gan.losses.NonSaturatingLoss" != r3gan_cfg.loss._target_
    for key in ("generator_steps", "burn_in", "data.batch_size", "optimizer.generator.betas", "optimizer.discriminator.eps"):
        assert OmegaConf.select(gan_cfg, key) == OmegaConf.select(r3gan_cfg, key), key
    modules = []
    for cfg in (gan_cfg, r3gan_cfg):
        torch.manual_seed(0)
        modules.append(build_module(cfg))
    gan, r3gan = modules
    assert set(gan.penalties) == {"r1r2"} and set(gan.schedules) == set(r3gan.schedules)
    assert gan.generator_ema is not None
    for name in gan.schedules:
        for step in (0, 9_000, 18_000, 22_000, 30_000):
            if name == "lr" and data == "toy2d_grid" and step > 22_000:
                assert r3gan.schedules[name].value(step) < gan.schedules[name].value(step) == 3e-4
            else:
                assert gan.schedules[name].value(step) == r3gan.schedules[name].value(step), (name, step)
    for net in ("generator", "discriminator"):
        ours, theirs = list(getattr(gan, net).parameters()), list(getattr(r3gan, net).parameters())
        assert len(ours) == len(theirs) and all(torch.equal(a, b) for a, b in zip(ours, theirs)), net
    z = torch.randn(5, gan_cfg.model.generator.latent_dim)
    assert torch.equal(gan.generator(z), r3gan.generator(z))
    x = torch.randn(5, 2)
    assert torch.equal(gan.discriminator(x), r3gan.discriminator(x))


def test_pacgans_gan_setting_is_one_experiment_away(make_cfg):
    """experiment=pacgan: PacGAN's GAN baseline (batch-normed 4 x 400 G from z in R^2, 3 x 200 maxout D with 5
    pieces, Adam 1e-4 with beta1 0.8, batch 100), with the toy preset off: no penalty, no schedule, no r3gan Adam."""
    from gan.nets.mlp import Maxout

    cfg = make_cfg(["data=toy2d_grid", "logger=none", "experiment=pacgan"])  # the experiment picks model=gan itself
    module = build_module(cfg)
    assert cfg.data.batch_size == 100 and cfg.generator_steps == 10_000
    assert not module.penalties and not module.schedules
    linear = [m for m in module.generator.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [400, 400, 400, 400, 2] and module.generator.latent_dim == 2
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in module.generator.modules()) == 4
    maxout = [m for m in module.discriminator.modules() if isinstance(m, Maxout)]
    assert [(m.out_features, m.pieces) for m in maxout] == [(200, 5)] * 3
    for optimizer in module.configure_optimizers():
        assert isinstance(optimizer, torch.optim.Adam)
        assert optimizer.defaults["lr"] == 1e-4 and optimizer.defaults["betas"] == (0.8, 0.999)


def test_the_grid10_experiment_is_the_recorded_runs_configuration(make_cfg):
    """experiment=grid10 alone composes exactly what benchmarks/results/grid10_scaled.jsonl's 60,000-step runs
    used (model=r3gan data=toy2d_grid with their overrides), and the data are a 10 x 10 lattice in [-4, 4] whose
    spacing is 4/9 of reproduce.py's grid10 and whose std is scaled alike."""
    import json

    from gan.utils.config import PROJECT_ROOT
    from gan.utils.instantiate import build

    records = [json.loads(line) for line in (PROJECT_ROOT / "benchmarks/results/grid10_scaled.jsonl").read_text().splitlines()]
    recorded = next(r for r in records if r["steps"] == 60000)
    overrides = [o for o in recorded["overrides"] if not o.startswith(("seed=", "cpu_threads="))]
    run_options = [o for o in overrides if o.startswith(("logger=", "callbacks=", "+trainer."))]  # the benchmark's, not the task's
    ours = make_cfg(["experiment=grid10", *run_options])
    theirs = make_cfg(overrides)
    as_dict = lambda cfg: {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "paths"}  # noqa: E731
    assert as_dict(ours) == as_dict(theirs)
    datamodule = build(ours.data)
    datamodule.setup("fit")
    axis = sorted(set(datamodule.modes[:, 0].tolist()))
    assert len(datamodule.modes) == 100 and axis[0] == -4 and axis[-1] == 4
    assert all(b - a == pytest.approx(2 * 4 / 9, abs=1e-6) for a, b in zip(axis, axis[1:]))
    assert datamodule.std == pytest.approx(0.03 * 4 / 9, abs=1e-6)
    assert ours.generator_steps == 60000 and ours.model.schedules.lr.value.then_from == 52000


def test_a_presets_callback_values_are_not_overwritten_by_the_callbacks_group(make_cfg):
    """The toy presets draw a sample grid every 1,000 generator steps (their runs are 5,000-30,000 steps long);
    the preset is composed after the callbacks group, so its value is the one a run gets."""
    tuned = make_cfg(["model=r3gan", "data=toy2d_grid", "logger=none"])
    plain = make_cfg(["model=r3gan", "data=toy2d_grid", "logger=none", "presets=none"])
    assert tuned.callbacks.sample_grid.every_n_generator_steps == 1000
    assert plain.callbacks.sample_grid.every_n_generator_steps == 250
    cli = make_cfg(["model=r3gan", "data=toy2d_grid", "logger=none", "callbacks.sample_grid.every_n_generator_steps=7"])
    assert cli.callbacks.sample_grid.every_n_generator_steps == 7


def test_a_model_option_a_schedule_overwrites_is_named(make_cfg):
    """r3gan's gamma and EMA half-life schedules overwrite model.penalties.r1r2.gamma and model.ema_decay at every
    generator step: set on the command line they changed nothing, without a word (found by an audit)."""
    from gan.utils.config import options_under_a_schedule

    schedules = make_cfg(["logger=none"]).model.schedules  # the default run: r3gan
    gamma, = options_under_a_schedule(schedules, ["model.penalties.r1r2.gamma=5"])
    assert gamma == ("model.schedules.gamma sets gamma of the r1r2 penalty at every generator step, so "
                     "model.penalties.r1r2.gamma=5 does not set it; change model.schedules.gamma.value (start, end), or "
                     "add model.schedules.gamma=null")
    decay, = options_under_a_schedule(schedules, ["model.ema_decay=0.999"])
    assert decay.startswith("model.schedules.ema_half_life sets the EMA's decay (from its half-life) at every generator "
                            "step, so model.ema_decay=0.999 does not set it;")
    assert options_under_a_schedule(schedules, ["model.penalties.r1r2.other=1", "model.ema_start=3"]) == []
    # a whole penalty replaced is still overwritten; left out (null) it is not, and the schedule's own check says what to
    # do (it was warned as "does not set it", then refused naming no way out: a README walk-through)
    whole, = options_under_a_schedule(schedules, ["model.penalties.r1r2={_target_:gan.losses.R1R2Penalty,gamma:5}"])
    assert whole.startswith("model.schedules.gamma sets gamma of the r1r2 penalty")
    assert options_under_a_schedule(schedules, ["model.penalties.r1r2=null"]) == []
    unscheduled = make_cfg(["logger=none", "model.schedules.gamma=null", "model.schedules.ema_half_life=null"]).model.schedules
    assert options_under_a_schedule(unscheduled, ["model.penalties.r1r2.gamma=5", "model.ema_decay=0.999"]) == []


@pytest.mark.parametrize("overrides, said", [
    (["model=dcgan", "model.ema_decay=0.9", "model.ema_start=100", "generator_steps=6"],
     "model.ema_start=100 comes after the run's last generator step (generator_steps=6): the EMA is never updated, so "
     "samples, metrics and checkpoints' sampling generator are the raw generator's"),
    (["model=dcgan", "model.ema_decay=0.9", "model.ema_start=6", "generator_steps=6"], None),  # updated at the last step
    # written as 1e12 it is a float, which the check did not read as a step (an audit)
    (["model=dcgan", "model.ema_decay=0.9", "model.ema_start=1e12", "generator_steps=6"],
     "model.ema_start=1000000000000.0 comes after the run's last generator step (generator_steps=6)"),
    (["model=dcgan", "model.ema_decay=null", "model.ema_start=100", "generator_steps=6"], None),  # no EMA at all
    (["model=wgan_gp", "augment=ada"], "augment=ada adjusts its probability from the mean sign of D's logits on reals, but "
     "WassersteinLoss is unchanged when every logit shifts by the same amount"),
    (["model=r3gan", "augment=ada"], "augment=ada adjusts its probability from the mean sign of D's logits on reals, but "
     "RelativisticLoss is unchanged"),
    (["model=dcgan", "augment=ada"], None),  # non-saturating: the sign is D's decision
    (["model=dcgan", "presets=none", "model.discriminator.minibatch=stddev", "data.batch_size=7"],
     "data.batch_size=7 has no divisor from 2 to model.discriminator.minibatch_group_size=4: minibatch stddev groups each "
     "sample alone"),
    (["model=dcgan", "presets=none", "model.discriminator.minibatch=stddev", "data.batch_size=6"], None),  # groups of 3
    (["model=dcgan", "presets=none", "model.discriminator.minibatch=stddev", "data.batch_size=9",
      "model.discriminator.minibatch_group_size=3"], None),  # the group size itself divides the batch
    (["model=wgan_gp", "model.discriminator.norm=batch"], "model.penalties.gradient_penalty penalizes D's gradient with "
     "respect to each input sample, but a D with batch norm mixes the samples of a batch"),  # an audit of the tricks
    (["model=wgan_gp"], None),  # its critic has layer norm, as the paper says
    (["model=r3gan", "data=toy2d_ring"], None),
    # a second audit (Hydra config matrix): each trained without a word
    (["model=dcgan", "optimizer.generator.lr=0"], "optimizer.generator.lr=0: the generator is never updated"),
    (["model=r3gan", "optimizer.generator.lr=0"], None),  # its lr schedule sets the rate
    # a schedule of the rate under another name sets it as well (only one named lr was seen: a review)
    (["model=dcgan", "optimizer.generator.lr=0", "+model.schedules.warmup={_target_:gan.schedules.OptimizerSetting,"
      "hyperparameter:lr,value:{_target_:gan.schedules.Linear,start:0.0,end:2.0e-4,steps:100}}"], None),
    (["model=dcgan", "optimizer.generator.lr=0", "+model.schedules.warmup={_target_:gan.schedules.OptimizerSetting,"
      "hyperparameter:lr,networks:[discriminator],value:1.0e-4}"], "optimizer.generator.lr=0: the generator is never updated"),
    (["model=dcgan", "callbacks=none", "metrics.every_n_generator_steps=3"], "metrics.every_n_generator_steps=3 has no "
     "effect: the metrics callback is off"),
    (["model=dcgan", "callbacks=none", "metrics=none"], None),
    (["model=dcgan", "data.generator_output=sigmoid"], "model.generator.output=sigmoid puts the samples in [0, 1], but the "
     "data spans [-1, 1] (every image is scaled so): the generator cannot reach values below 0; expected tanh"),
    (["model=gan", "data=toy2d_ring", "model.generator.output=sigmoid"], "model.generator.output=sigmoid puts the samples in "
     "[0, 1], but the data spans the whole plane"),
    # an audit of the tricks (2026-12-06)
    (["model=dcgan", "model.real_label=0.9", "model.real_label_range=[0.7,1.0]"], "model.real_label=0.9 has no effect: "
     "model.real_label_range=[0.7, 1.0] draws the real targets instead"),
    (["model=dcgan", "model.real_label_range=[0.7,1.0]"], None),
    (["model=dcgan", "generator_steps=20", "model.instance_noise_std=0.1", "model.instance_noise_steps=1000"],
     "model.instance_noise_steps=1000 is longer than the run (generator_steps=20): the instance noise (std 0.1) is never "
     "annealed to 0"),
    (["model=dcgan", "generator_steps=20", "model.instance_noise_std=0.1"], None),  # the run's length, the default
    (["model=dcgan", "generator_steps=20", "model.instance_noise_std=0.1", "model.instance_noise_steps=21"],
     "model.instance_noise_steps=21 is longer than the run"),  # one step past it (a mutation moved the boundary)
    (["model=r3gan", "model.schedules.ema_half_life=null"], "model.ema_decay=0.0 keeps nothing of the generator's past"),
    (["model=dcgan", "model.ema_decay=0"], "model.ema_decay=0 keeps nothing of the generator's past"),
])
def test_options_that_cannot_act_in_their_combination_are_said(make_cfg, overrides, said):
    """Found by an audit: each of these trained exactly like the run without the option, without a word."""
    from gan.utils.config import options_without_effect

    lines = options_without_effect(make_cfg(overrides + ["logger=none"]))
    assert [line[:len(said)] for line in lines] == [said] if said else lines == []


class MyR1(__import__("gan.losses.penalties", fromlist=["R1Penalty"]).R1Penalty):
    """A user's own penalty on D's input gradients (a subclass, under another name)."""


class MyCritic(WassersteinLoss):
    """A user's own shift-invariant loss."""


class MyRate(__import__("gan.schedules", fromlist=["OptimizerSetting"]).OptimizerSetting):
    """A user's own schedule of an optimizer option."""


def test_a_user_s_own_classes_are_judged_by_what_they_declare_not_by_their_names(make_cfg):
    """The checks matched the framework's class names, so a subclass under another name escaped them (a review)."""
    from gan.utils.config import options_under_a_schedule, options_without_effect

    here = __name__
    batch_norm_d = ["model=dcgan", "presets=none", "logger=none", f"+model.penalties.mine._target_={here}.MyR1",
                    "+model.penalties.mine.gamma=1.0"]
    assert [line[:60] for line in options_without_effect(make_cfg(batch_norm_d))] == [
        "model.penalties.mine penalizes D's gradient with respect to each input sample"[:60]]
    ada = ["model=dcgan", "presets=none", "logger=none", "augment=ada", f"loss._target_={here}.MyCritic"]
    assert [line[:52] for line in options_without_effect(make_cfg(ada))] == [
        "augment=ada adjusts its probability from the mean sign of D's logits on reals"[:52]]
    schedules = OmegaConf.create({"rate": {"_target_": f"{here}.MyRate", "hyperparameter": "lr", "value": 1e-3}})
    said, = options_under_a_schedule(schedules, ["optimizer.generator.lr=1e-4"])
    assert said.startswith("model.schedules.rate sets lr of the generator and discriminator optimizers at every generator "
                           "step, so optimizer.generator.lr=1e-4 does not set it")
    unknown = OmegaConf.create({"rate": {"_target_": "nowhere.Rate", "hyperparameter": "lr", "value": 1e-3}})
    assert options_under_a_schedule(unknown, ["optimizer.generator.lr=1e-4"]) == []  # its own build reports it


@pytest.mark.parametrize("overrides, said", [
    (["model=dcgan", "presets=none", "model.discriminator.minibatch_group_size=2"],
     "model.discriminator.minibatch_group_size=2 has no effect: it acts only with model.discriminator.minibatch=stddev, "
     "and model.discriminator.minibatch=none here"),
    (["model=dcgan", "presets=none", "model.discriminator.minibatch=stddev", "model.discriminator.minibatch_group_size=2"], None),
    (["model=acgan", "model.discriminator.conditioning=projection", "model.auxiliary_weight=5"],
     "model.auxiliary_weight=5 has no effect: it acts only with an auxiliary classifier head (model=acgan, "
     "model.discriminator.conditioning=auxiliary), and model.discriminator.conditioning=projection here"),
    (["model=acgan", "model.auxiliary_weight=5"], None),
    (["model=dcgan", "model.ema_decay=null", "model.ema_start=3"],
     "model.ema_start=3 has no effect: it acts only with model.ema_decay (e.g. 0.999), and model.ema_decay=null here"),
    (["model=dcgan", "model.instance_noise_steps=2"], "model.instance_noise_steps=2 has no effect: it acts only with "
     "model.instance_noise_std > 0, and model.instance_noise_std=0.0 here"),
    (["model=dcgan", "model.feature_matching_layer=0"], "model.feature_matching_layer=0 has no effect"),
])
def test_an_option_whose_switch_is_off_is_said(make_cfg, overrides, said):
    """Found by an audit: each trained exactly like the run without the option. Only options given on the command
    line are judged (the config carries every default)."""
    from gan.utils.config import options_whose_switch_is_off

    lines = options_whose_switch_is_off(make_cfg(overrides + ["logger=none"]), overrides)
    assert [line[:len(said)] for line in lines] == [said] if said else lines == []


def test_a_minibatch_stddev_group_of_one_sample_is_refused():
    """A group of one sample has no spread: the layer appended the constant sqrt(1e-8) to every sample."""
    from gan.nets.layers import MinibatchStdDev
    from gan.utils.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^minibatch_group_size must be an integer >= 2 \(the samples whose spread is "
                                          r"measured\), got 1$"):
        MinibatchStdDev(1)
    assert MinibatchStdDev(2).group_size == 2


def test_every_shipped_adam_and_sgd_pair_is_fused():
    """The README says the Adam and SGD pairs use the fused kernels; optimizer=ttur was left out (an audit)."""
    from gan.utils.config import PROJECT_ROOT

    for path in sorted((PROJECT_ROOT / "conf" / "optimizer").glob("*.yaml")):
        for network, node in OmegaConf.load(path).items():
            if node["_target_"] in ("torch.optim.Adam", "torch.optim.SGD"):
                assert node.get("fused") is True, f"{path.name}: {network}"


def test_an_experiment_written_for_one_model_run_with_another_is_said():
    """experiment=grid10 model=dcgan failed on r3gan's schedule options with a message naming neither (an audit)."""
    from gan.utils.config import experiment_model, experiment_model_replaced

    assert (experiment_model("grid10"), experiment_model("pacgan"), experiment_model("ablation/ttur")) == ("r3gan", "gan", None)
    line, = experiment_model_replaced({"experiment": "grid10", "model": "dcgan"})
    assert line.startswith("experiment=grid10 is written for model=r3gan (its networks and options), but model=dcgan on the "
                           "command line replaces it")
    assert experiment_model_replaced({"experiment": "grid10", "model": "r3gan"}) == []
    assert experiment_model_replaced({"experiment": None, "model": "dcgan"}) == []


def test_interval_resolvers_take_a_null_interval_and_a_monitor_that_is_no_string(make_cfg):
    """Both failed inside a config resolver, a traceback before the options were checked (an audit)."""
    from omegaconf import OmegaConf

    from gan.metrics.registry import best_monitor
    from gan.utils.errors import ConfigError

    cfg = make_cfg(["metrics.every_n_generator_steps=null"])
    assert OmegaConf.select(cfg, "callbacks.best_checkpoint.every_n_train_steps") == 0  # off, as with 0
    with pytest.raises(ConfigError, match=r"^metrics\.monitor='-1' is not computed by the selected metrics \['fid_digits'\]"):
        best_monitor(-1, ["fid_digits"])


PRESET_FILES = sorted((PROJECT_ROOT / "conf" / "preset" / "tuned").glob("*/*.yaml"))


@pytest.mark.parametrize("preset", PRESET_FILES, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_every_presets_schedules_fit_its_own_budget(make_cfg, preset):
    """A preset's schedules are written for its ``generator_steps``: every part of them acts within the run, and a
    curve that hands over to a next one (a cool-down) ends with the run, as the presets' comments say ("over the
    last 3,000 generator steps"). A budget changed without moving ``then_from`` (the wgan toy preset went from 5,000
    to 10,000 steps, 2026-12-07) would cool down mid-run or never."""
    cfg = make_cfg([f"model={preset.parent.name}", f"data={preset.stem}", "logger=none"])
    schedules = {name: instantiate(entry) for name, entry in (cfg.model.get("schedules") or {}).items() if entry}
    assert parts_beyond_the_run(schedules, cfg.generator_steps) == []
    for name, setting in schedules.items():
        curve = setting.value
        if getattr(curve, "then", None) is not None:
            assert curve.then_from + curve.then.steps == cfg.generator_steps, (name, curve)
