"""Every model x data composes; variants pick their loss/optimizer; command-line groups still win."""
import pytest
from hydra.utils import instantiate

from gan.losses import HingeLoss, LeastSquaresLoss, NonSaturatingLoss, WassersteinLoss
from gan.utils.instantiate import build_module
from tests.conftest import DATASETS, MODELS

CORE_DATA = ["digits", "toy2d_ring", "toy2d_grid"]


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("model", MODELS)
def test_every_model_and_data_compose(make_cfg, model, data):
    cfg = make_cfg([f"model={model}", f"data={data}", "logger=none"])
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


def test_the_default_run_takes_the_dcgan_digits_preset(make_cfg):
    """`make train` (dcgan on digits) trains with conf/preset/tuned/dcgan/digits.yaml; presets=none is the paper."""
    tuned = build_module(make_cfg(["logger=none"]))
    paper = build_module(make_cfg(["logger=none", "presets=none"]))
    for module, lr, betas, ema in ((tuned, 1e-3, (0.5, 0.99), True), (paper, 2e-4, (0.5, 0.999), False)):
        for optimizer in module.configure_optimizers():
            assert optimizer.defaults["lr"] == lr and tuple(optimizer.defaults["betas"]) == betas
        assert (module.generator_ema is not None) == ema


def test_a_group_chosen_under_a_preset_is_named(make_cfg):
    """optimizer=ttur on the default digits: the preset's learning rates win (it is composed later), so the
    run says which values replace the chosen group's, and nothing is said without a preset or a group choice."""
    from gan.utils.config import groups_under_a_preset, preset_values

    lines = groups_under_a_preset("tuned/dcgan/digits", ["optimizer=ttur", "seed=3", "optimizer.generator.lr=1e-4"])
    assert len(lines) == 1 and "optimizer=ttur" in lines[0] and "presets=none" in lines[0]
    assert "optimizer.generator.lr" in lines[0] and "optimizer.discriminator.betas" in lines[0]
    # the composed run agrees with the warning: ttur's 1e-4 / 4e-4 are replaced
    opt_g, opt_d = build_module(make_cfg(["optimizer=ttur", "logger=none"])).configure_optimizers()
    assert (opt_g.defaults["lr"], opt_d.defaults["lr"]) == (1e-3, 1e-3)
    assert groups_under_a_preset(None, ["optimizer=ttur"]) == []
    assert groups_under_a_preset("tuned/wgan_gp/digits", ["optimizer=ttur"]) == []  # the optional preset is absent
    assert groups_under_a_preset("tuned/dcgan/digits", ["callbacks=none", "loss=hinge"]) == []  # sets no loss values
    # values of included presets count, and a preset's own values win over them: r3gan's digits preset includes
    # its Stacked MNIST one and sets its own learning rate; mnist's includes the digits' (two levels)
    stacked = preset_values("tuned/r3gan/stacked_mnist")
    for data in ("digits", "mnist"):
        values = preset_values(f"tuned/r3gan/{data}")
        assert values.data.batch_size == stacked.data.batch_size
        assert values.model.schedules.gamma.value.start == stacked.model.schedules.gamma.value.start
        assert values.model.schedules.lr.value.start == 2e-3 and "lr" not in stacked.model.schedules
