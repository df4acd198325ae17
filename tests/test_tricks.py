"""Each stabilization trick does exactly what it claims, and trains end to end with it on."""
import csv
import json

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from gan.losses import (
    GradientPenalty,
    HingeLoss,
    InstanceNoise,
    LabelTargets,
    LeastSquaresLoss,
    NonSaturatingLoss,
    R1Penalty,
    WassersteinLoss,
    feature_matching_loss,
    instance_noise_std,
)
from gan.nets import DCGANDiscriminator, DCGANGenerator, MinibatchDiscrimination, MinibatchStdDev, MLPDiscriminator
from tests.conftest import CONF_DIR, tiny_overrides
from tests.test_module import SHAPE, attach_trainer, changed, make_module, params
from train import train


def capture_discriminator_loss(module):
    seen = []
    original = module.loss.discriminator_loss

    def spy(real_logits, fake_logits, **targets):
        seen.append(targets)
        return original(real_logits, fake_logits, **targets)

    module.loss.discriminator_loss = spy
    return seen


# ------------------------------------------------------------------------------------------ label targets
def test_one_sided_label_smoothing_is_the_target_the_loss_sees():
    module = make_module(real_label=0.9)
    attach_trainer(module)
    seen = capture_discriminator_loss(module)
    module.discriminator_step(torch.randn(4, *SHAPE), module.optimizers()[1])
    assert torch.equal(seen[0]["real_targets"], torch.full((4,), 0.9))
    assert torch.equal(seen[0]["fake_targets"], torch.zeros(4))  # fakes are never smoothed


def test_default_targets_leave_the_loss_untouched():
    module = make_module()
    attach_trainer(module)
    seen = capture_discriminator_loss(module)
    module.discriminator_step(torch.randn(4, *SHAPE), module.optimizers()[1])
    assert seen == [{}]


def test_smoothed_loss_is_the_cross_entropy_against_the_targets():
    real, fake = torch.tensor([0.5, -2.0, 3.0]), torch.tensor([1.0, -1.0, 0.0])
    targets = {"real_targets": torch.tensor([0.9, 0.8, 0.7]), "fake_targets": torch.tensor([0.0, 1.0, 0.0])}
    expected = F.binary_cross_entropy_with_logits(real, targets["real_targets"]) + F.binary_cross_entropy_with_logits(fake, targets["fake_targets"])
    assert NonSaturatingLoss().discriminator_loss(real, fake, **targets)["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    a, b = -1.0, 1.0  # LSGAN: target t maps to a + t (b - a)
    lsgan = LeastSquaresLoss(a, b, 0.0).discriminator_loss(real, fake, **targets)["loss"].item()
    mapped_real, mapped_fake = a + targets["real_targets"] * (b - a), a + targets["fake_targets"] * (b - a)
    assert lsgan == pytest.approx((0.5 * (real - mapped_real).pow(2).mean() + 0.5 * (fake - mapped_fake).pow(2).mean()).item(), rel=1e-6)


def test_noisy_real_labels_are_uniform_in_their_range():
    torch.manual_seed(0)
    real = LabelTargets(real_range=[0.7, 1.0])(20000)["real_targets"]
    assert real.min() >= 0.7 and real.max() <= 1.0
    assert real.mean().item() == pytest.approx(0.85, abs=0.01)
    assert real.std().item() == pytest.approx(0.3 / 12**0.5, rel=0.05)


def test_label_flips_swap_targets_with_their_probability():
    torch.manual_seed(0)
    targets = LabelTargets(real=0.9, flip_prob=0.2)(20000)
    real, fake = targets["real_targets"], targets["fake_targets"]
    assert torch.allclose(real.unique(), torch.tensor([0.0, 0.9])) and torch.allclose(fake.unique(), torch.tensor([0.0, 0.9]))
    assert (real == 0).float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert (fake > 0).float().mean().item() == pytest.approx(0.2, abs=0.01)


@pytest.mark.parametrize("loss", [WassersteinLoss(), HingeLoss()])
def test_label_tricks_on_a_critic_loss_are_a_clear_error(loss):
    with pytest.raises(ValueError, match=rf"{type(loss).__name__} has none; use loss=non_saturating"):
        make_module(loss=loss, real_label=0.9)


@pytest.mark.parametrize("kwargs,match", [({"real": 1.5}, "real_label must be in"), ({"real_range": [0.9, 0.7]}, "real_label_range"),
                                          ({"flip_prob": 0.7}, "label_flip_prob must be in")])
def test_bad_label_options_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LabelTargets(**kwargs)


# ----------------------------------------------------------------------------------------- instance noise
@pytest.mark.parametrize("schedule,step,expected", [
    ("linear", 0, 0.2), ("linear", 25, 0.15), ("linear", 50, 0.1), ("linear", 100, 0.0), ("linear", 500, 0.0),
    ("exponential", 0, 0.2), ("exponential", 50, 0.02), ("exponential", 99, 0.2 * 0.01 ** 0.99), ("exponential", 100, 0.0),
])
def test_instance_noise_std_at_given_generator_steps(schedule, step, expected):
    assert instance_noise_std(step, 0.2, 100, schedule) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_instance_noise_reaches_every_discriminator_input_with_the_scheduled_std():
    module = make_module(instance_noise_std=0.5, instance_noise_steps=100, num_fixed_samples=8)
    attach_trainer(module)
    module.generator_steps = 60  # a resumed run: the std follows the checkpointed counter -> 0.5 * 0.4
    inputs = []
    original = module.discriminator.evaluate
    module.discriminator.evaluate = lambda x, labels=None: inputs.append(x.detach().clone()) or original(x, labels)
    real = torch.zeros(64, *SHAPE)
    terms = module.discriminator_step(real, module.optimizers()[1])
    assert terms["instance_noise_std"].item() == pytest.approx(0.2)
    assert inputs[0].std().item() == pytest.approx(0.2, rel=0.03)  # the real batch of zeros, noised
    module.generator_step(real, module.optimizers()[0])
    assert len(inputs) == 3  # real, fake (D step), fake (G step): all noised
    assert not torch.equal(inputs[1], inputs[2])


def test_instance_noise_options_are_checked():
    with pytest.raises(ValueError, match=r"schedule='cosine'"):
        InstanceNoise(0.1, 10, "cosine")


# --------------------------------------------------------------------------------------- feature matching
def test_feature_matching_loss_is_the_squared_distance_of_batch_means():
    real, fake = torch.randn(8, 3, 2, 2), torch.randn(8, 3, 2, 2, requires_grad=True)
    expected = ((real.flatten(1).mean(0) - fake.flatten(1).mean(0)) ** 2).mean()
    assert feature_matching_loss(real, fake).item() == pytest.approx(expected.item(), rel=1e-6)


def test_feature_matching_gradient_reaches_the_generator_only():
    module = make_module(feature_matching_weight=1.0, adversarial_generator_loss=False, feature_matching_layer=0)
    attach_trainer(module)
    g_before, d_before = params(module.generator), params(module.discriminator)
    terms = module.generator_step(torch.randn(4, *SHAPE), module.optimizers()[0])
    assert terms["loss"].item() == pytest.approx(terms["feature_matching"].item()) and terms["feature_matching"] > 0
    assert not any(changed(d_before, module.discriminator))
    assert all(p.grad is None for p in module.discriminator.parameters())
    assert all(changed(g_before, module.generator)[:1])  # the first layer of G moved


def test_feature_matching_adds_to_the_adversarial_loss_with_its_weight():
    module = make_module(feature_matching_weight=0.5)
    attach_trainer(module)
    adversarial = []
    original = module.loss.generator_loss
    module.loss.generator_loss = lambda logits: adversarial.append(original(logits)["loss"].item()) or original(logits)
    terms = module.generator_step(torch.randn(4, *SHAPE), module.optimizers()[0])
    assert terms["loss"].item() == pytest.approx(adversarial[0] + 0.5 * terms["feature_matching"].item(), rel=1e-6)


def test_feature_matching_layer_out_of_range_is_named():
    with pytest.raises(ValueError, match=r"feature_matching_layer=5 .* 2 blocks"):
        make_module(feature_matching_weight=1.0, feature_matching_layer=5)


# ---------------------------------------------------------------------------------------- minibatch layers
def test_minibatch_stddev_appends_the_group_std():
    x = torch.randn(8, 3, 4, 4)
    out = MinibatchStdDev(group_size=4)(x)
    assert out.shape == (8, 4, 4, 4) and torch.equal(out[:, :3], x)
    for i in range(8):  # StyleGAN2 grouping: sample i belongs to group i % (N / G)
        group = x[i % 2::2]
        expected = group.std(dim=0, unbiased=False).mean()
        assert torch.allclose(out[i, 3], expected.expand(4, 4), atol=1e-5)
    vectors = torch.randn(6, 5)
    assert MinibatchStdDev(4)(vectors).shape == (6, 6)  # group of 3 (largest divisor of 6 not above 4)


def test_minibatch_stddev_depends_on_the_other_samples_of_the_group():
    x = torch.randn(4, 2, 3, 3)
    y = x.clone()
    y[1] += 5.0
    layer = MinibatchStdDev(group_size=4)
    assert not torch.allclose(layer(x)[0, 2], layer(y)[0, 2])
    # a batch of 3 has no divisor from 2 to 2: each sample is its own group and depends on no other (a group of 1
    # asked for is refused; train.py warns about a batch size that gives one)
    odd = torch.randn(3, 2, 3, 3)
    changed = odd.clone()
    changed[1] += 5.0
    assert torch.equal(MinibatchStdDev(group_size=2)(odd)[0, 2], MinibatchStdDev(group_size=2)(changed)[0, 2])


def test_minibatch_discrimination_matches_the_paper_formula():
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(in_features=6, num_kernels=3, kernel_dim=2)
    x = torch.randn(5, 6)
    out = layer(x)
    assert out.shape == (5, 9) and torch.equal(out[:, :6], x)
    m = (x @ layer.T).view(5, 3, 2)
    for i in range(5):
        expected = sum(torch.exp(-(m[i] - m[j]).abs().sum(dim=1)) for j in range(5))
        assert torch.allclose(out[i, 6:], expected, atol=1e-5)
    y = x.clone()
    y[4] = 0.0
    assert not torch.allclose(layer(y)[0, 6:], out[0, 6:])  # o(x_0) depends on another sample
    maps = torch.randn(4, 2, 3, 3)
    assert MinibatchDiscrimination(18, 3, 2)(maps).shape == (4, 5, 3, 3)  # appended as constant channels


@pytest.mark.parametrize("minibatch", ["stddev", "discrimination"])
def test_discriminators_take_a_minibatch_layer(minibatch):
    d = DCGANDiscriminator((1, 16, 16), width=4, minibatch=minibatch)
    x = torch.randn(8, 1, 16, 16)
    assert d(x).shape == (8,)
    y = x.clone()
    y[5] = 3.0
    assert d(y)[0] != d(x)[0]  # a sample's logit depends on the rest of the batch
    assert MLPDiscriminator((2,), hidden=[8], minibatch=minibatch)(torch.randn(8, 2)).shape == (8,)


def test_unknown_minibatch_layer_is_named():
    with pytest.raises(ValueError, match=r"unknown minibatch layer 'batch'"):
        DCGANDiscriminator((1, 16, 16), width=4, minibatch="batch")


# ------------------------------------------------------------------------------ spectral norm, dropout
def test_spectral_norm_on_the_generator():
    torch.manual_seed(0)
    g = DCGANGenerator(8, (1, 16, 16), width=4, spectral_norm=True)
    for _ in range(50):
        g(torch.randn(2, 8))
    convs = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    for m in convs:  # ConvTranspose2d weights are (in, out, k, k): the singular value of the (out, in*k*k) map
        sigma = torch.linalg.matrix_norm(m.weight.transpose(0, 1).flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=0.05)


def test_dropout_in_the_discriminator_is_random_in_training_only():
    d = DCGANDiscriminator((1, 16, 16), width=4, norm="none", dropout=0.5)
    x = torch.randn(4, 1, 16, 16)
    assert sum(isinstance(m, torch.nn.Dropout) for m in d.modules()) == 2
    assert not torch.equal(d(x), d(x))
    d.eval()
    assert torch.equal(d(x), d(x))


# ----------------------------------------------------------------------------------------------------- R1
def reference_r1(critic, real, gamma):
    """One sample at a time: gamma / 2 * ||dD(x_i)/dx_i||^2, averaged."""
    terms = []
    for i in range(real.size(0)):
        x = real[i : i + 1].detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x).sum(), x)
        terms.append(grad.pow(2).sum())
    return gamma / 2 * torch.stack(terms).mean()


def test_r1_matches_a_per_sample_reference():
    torch.manual_seed(0)
    critic = DCGANDiscriminator((1, 16, 16), width=4, norm="layer").double()
    real, fake = torch.randn(5, 1, 16, 16).double(), torch.randn(5, 1, 16, 16).double()
    terms = R1Penalty(gamma=3.0)(critic, real, fake)
    assert terms["loss"].item() == pytest.approx(reference_r1(critic, real, 3.0).item(), rel=1e-9)
    assert terms["r1"].item() == pytest.approx(terms["loss"].item() / 1.5, rel=1e-9)
    lazy = R1Penalty(gamma=3.0, interval=4)(critic, real, fake)
    assert lazy["loss"].item() == pytest.approx(4 * terms["loss"].item(), rel=1e-9)


def test_lazy_r1_applies_every_interval_discriminator_steps():
    module = make_module(penalties={"r1": R1Penalty(gamma=1.0, interval=3)})
    attach_trainer(module)
    applied = []
    for _ in range(7):
        applied.append("r1" in module.discriminator_step(torch.randn(4, *SHAPE), module.optimizers()[1]))
    assert applied == [True, False, False, True, False, False, True]


def test_a_lazy_penalty_on_an_earlier_discriminator_step_keeps_its_term():
    """interval = n_critic fires on the first of an iteration's D steps, whose terms were dropped with it: the penalty
    was never logged nor seen by the divergence check (a review)."""
    module = make_module(penalties={"r1": R1Penalty(gamma=1.0, interval=3)}, n_critic=3)
    attach_trainer(module)
    opt_g, opt_d = module.optimizers()
    real_batches = [torch.randn(4, *SHAPE) for _ in range(4)]
    module.train_iteration(real_batches, [None] * 4, opt_g, opt_d)
    first = module.last_terms["train/d/r1"]
    assert first.item() > 0 and module.discriminator_steps == 3
    module.train_iteration(real_batches, [None] * 4, opt_g, opt_d)  # fires again on the first D step, at 3
    assert module.last_terms["train/d/r1"].item() != first.item()


def test_penalty_interval_must_be_positive():
    with pytest.raises(ValueError, match="interval must be a positive integer.*got 0"):
        GradientPenalty(interval=0)


# ------------------------------------------------------------------------------ one short run per trick
TRICK_RUNS = {
    "label_smoothing": ["model.real_label=0.9"],
    "noisy_labels": ["model.real_label_range=[0.7,1.0]", "model.label_flip_prob=0.05"],
    "instance_noise": ["model.instance_noise_std=0.1", "model.instance_noise_schedule=exponential"],
    "ttur": ["optimizer=ttur", "model.n_critic=2"],
    "spectral_norm": ["model.discriminator.spectral_norm=true", "model.generator.spectral_norm=true"],
    "feature_matching": ["model.feature_matching_weight=1.0"],
    "minibatch_stddev": ["model.discriminator.minibatch=stddev"],
    "minibatch_discrimination": ["model.discriminator.minibatch=discrimination"],
    "dropout": ["model.discriminator.dropout=0.3"],
    "ema": ["model.ema_decay=0.9", "model.ema_start=1"],
    "r1_lazy": ["+model.penalties.r1={_target_:gan.losses.R1Penalty,gamma:1.0,interval:2}"],
}


@pytest.mark.parametrize("trick", sorted(TRICK_RUNS))
def test_short_training_run_with_each_trick(make_cfg, trick):
    overrides = tiny_overrides("dcgan", "digits", steps=2) + TRICK_RUNS[trick]
    metrics, objects = train(make_cfg(overrides))
    module = objects["module"]
    assert module.generator_steps == 2 and module.discriminator_steps == 2 * module.n_critic
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    expected_terms = {"instance_noise": "train/d/instance_noise_std", "feature_matching": "train/g/feature_matching", "r1_lazy": "train/d/r1"}
    if trick in expected_terms:
        assert expected_terms[trick] in metrics
    if trick == "ema":
        assert module.sampling_generator is module.generator_ema.module


# ------------------------------------------------------------------------------------------- ablation
ABLATION_EFFECTS = {
    "baseline": lambda m: m.label_targets.real == 1.0 and m.generator_ema is None,
    "label_smoothing": lambda m: m.label_targets.real == 0.9,
    "instance_noise": lambda m: m.instance_noise.start == 0.1 and m.instance_noise.steps == 1000,
    "ttur": lambda m: [o.defaults["lr"] for o in m.configure_optimizers()] == [1e-4, 4e-4],
    "spectral_norm": lambda m: all(hasattr(c, "parametrizations") for c in m.discriminator.modules() if isinstance(c, torch.nn.Conv2d)),
    "minibatch_stddev": lambda m: isinstance(m.discriminator.minibatch, MinibatchStdDev),
    "ema": lambda m: m.generator_ema is not None and m.ema_start == 100,
}


def test_ablation_grid_is_the_baseline_plus_one_trick_each(make_cfg):
    from gan.utils.instantiate import build_module

    cfg = make_cfg(["experiment=ablate_tricks", "logger=none"])
    hydra_params = OmegaConf.load(CONF_DIR / "experiment" / "ablate_tricks.yaml").hydra.sweeper.params
    tricks = hydra_params["+experiment/ablation"].split(",")
    assert sorted(tricks) == sorted(p.stem for p in (CONF_DIR / "experiment" / "ablation").glob("*.yaml")) == sorted(ABLATION_EFFECTS)
    assert hydra_params.data.split(",") == ["toy2d_grid", "digits"]
    assert cfg.generator_steps == 1000
    for trick in tricks:
        module = build_module(make_cfg(["experiment=ablate_tricks", f"+experiment/ablation={trick}", "logger=none"]))
        others = [name for name, effect in ABLATION_EFFECTS.items() if name not in ("baseline", trick) and effect(module)]
        assert ABLATION_EFFECTS[trick](module) and not others, (trick, others)


def write_job(sweep, number, data, trick, values):
    """A job directory as train.py -m leaves it: Hydra's overrides/config and the metrics callback's jsonl."""
    job = sweep / str(number)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(f"- data={data}\n- +experiment/ablation={trick}\n- experiment=ablate_tricks\n")
    (job / ".hydra" / "config.yaml").write_text("data:\n  batch_size: 64\n")
    (job / "metrics").mkdir()
    metric = "mode_coverage" if data == "toy2d_grid" else "fid_digits"
    records = [{"generator_step": step, "global_step": 2 * step, "values": {k: v * step / 1000 for k, v in values.items()},
                "protocol": {"metrics": {metric: {}}}} for step in (500, 1000)]
    (job / "metrics" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_ablation_collects_the_last_scores_into_table_and_chart(tmp_path):
    from benchmarks import ablation

    sweep, rerun = tmp_path / "sweep", tmp_path / "rerun"
    toy = {"mode_coverage/modes": 20.0, "mode_coverage/high_quality": 0.5, "mode_coverage/reverse_kl": 0.4}
    write_job(sweep, 0, "toy2d_grid", "baseline", toy)
    write_job(sweep, 1, "toy2d_grid", "ttur", {**toy, "mode_coverage/modes": 24.0})
    write_job(sweep, 2, "digits", "baseline", {"fid_digits": 100.0})
    (sweep / "3" / ".hydra").mkdir(parents=True)  # a failed job: no metrics, left out with a warning
    write_job(rerun, 0, "digits", "ttur", {"fid_digits": 80.0})
    paths = ablation.main([str(sweep), str(rerun), "--out", str(tmp_path / "out")])
    rows = {(row["data"], row["trick"]): row for row in csv.DictReader(open(paths["csv"]))}
    assert set(rows) == {("toy2d_grid", "baseline"), ("toy2d_grid", "ttur"), ("digits", "baseline"), ("digits", "ttur")}
    assert float(rows["toy2d_grid", "ttur"]["mode_coverage/modes"]) == 24.0  # the last record (step 1000)
    assert rows["digits", "ttur"]["generator_step"] == "1000"
    table = paths["md"].read_text()
    assert "| ttur | 24 ± - (+4) | 0.5 ± - (+0) | 0.4 ± - (+0) | 1 | 80 ± - (-20) | 1 |" in table
    assert "digits fid_digits (↓)" in table and "toy2d_grid mode_coverage/modes (↑)" in table
    assert paths["png"].stat().st_size > 1000


def test_label_flips_of_reals_and_fakes_are_independent():
    # (a mutation audit) one draw for both flips swapped the real and fake targets of the same samples together
    torch.manual_seed(0)
    targets = LabelTargets(flip_prob=0.2)(20000)
    both = ((targets["real_targets"] == 0) & (targets["fake_targets"] > 0)).float().mean().item()
    assert both == pytest.approx(0.2 * 0.2, abs=0.008)


def test_label_flips_alone_reach_the_discriminator_loss():
    # (a mutation audit) LabelTargets.active ignored flip_prob: model.label_flip_prob alone left the targets untouched
    assert LabelTargets(flip_prob=0.1).active and not LabelTargets().active
    module = make_module(label_flip_prob=0.3)
    attach_trainer(module)
    seen = capture_discriminator_loss(module)
    torch.manual_seed(3)
    module.discriminator_step(torch.randn(64, *SHAPE), module.optimizers()[1])
    real, fake = seen[0]["real_targets"], seen[0]["fake_targets"]
    assert set(real.unique().tolist()) == {0.0, 1.0} and set(fake.unique().tolist()) == {0.0, 1.0}
    with pytest.raises(ValueError, match="has none"):
        make_module(loss=WassersteinLoss(), label_flip_prob=0.1)


def test_instance_noise_on_the_fakes_has_the_scheduled_std_once():
    # (a mutation audit) noise added to the fakes before discriminate() noised them twice (std sqrt(2) too large)
    module = make_module(instance_noise_std=0.5, instance_noise_steps=100)
    attach_trainer(module)
    module.generator_steps = 60  # std 0.5 * 0.4 = 0.2
    generated, inputs = [], []
    module.generator.register_forward_hook(lambda net, args, out: generated.append(out.detach().clone()))
    original = module.discriminator.evaluate
    module.discriminator.evaluate = lambda x, labels=None: inputs.append(x.detach().clone()) or original(x, labels)
    module.discriminator_step(torch.zeros(256, *SHAPE), module.optimizers()[1])
    module.generator_step(torch.zeros(256, *SHAPE), module.optimizers()[0])
    assert len(generated) == 2 and len(inputs) == 3
    for fake, seen in ((generated[0], inputs[1]), (generated[1], inputs[2])):
        assert (seen - fake).std().item() == pytest.approx(0.2, rel=0.03)


@pytest.mark.parametrize("layer", [0, -2])
def test_feature_matching_compares_the_configured_layer(layer):
    # (a mutation audit) the configured feature_matching_layer was ignored (always the last block)
    module = make_module(feature_matching_weight=1.0, adversarial_generator_loss=False, feature_matching_layer=layer)
    attach_trainer(module)
    generated = []
    module.generator.register_forward_hook(lambda net, args, out: generated.append(out.detach().clone()))
    real = torch.randn(8, *SHAPE)
    d_before = {k: v.clone() for k, v in module.discriminator.state_dict().items()}
    terms = module.generator_step(real, module.optimizers()[0])
    # reference: D as it was (batch-norm buffers restored; train mode normalises with the batch's statistics)
    module.discriminator.load_state_dict(d_before)
    with torch.no_grad():
        features = [module.discriminator.evaluate(x, None).features for x in (real, generated[0])]
    expected = feature_matching_loss(features[0][layer], features[1][layer])
    other = feature_matching_loss(features[0][-1], features[1][-1])
    assert not torch.isclose(expected, other)
    assert terms["feature_matching"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_instance_noise_comes_before_the_augmentation():
    # (a mutation audit) noise added after the augmentation filled cutout's zeroed square, which D then never saw
    from gan.augment import DiffAugment
    module = make_module(instance_noise_std=0.5, instance_noise_steps=100, augment=DiffAugment("cutout"))
    attach_trainer(module)
    inputs = []
    original = module.discriminator.evaluate
    module.discriminator.evaluate = lambda x, labels=None: inputs.append(x.detach().clone()) or original(x, labels)
    module.discriminator_step(torch.ones(8, *SHAPE), module.optimizers()[1])
    real = inputs[0]
    # every sample: a square of exact zeros (cutout, last), the rest noised around 1
    zeros = (real == 0).flatten(1).float().sum(1)
    assert torch.all(zeros >= 4) and (real[real != 0] - 1).std().item() == pytest.approx(0.5, rel=0.1)
