"""examples/own_parts: the framework extended from outside its tree (README, "Your own parts").

The example's command composed with its config folder on Hydra's search path and trained in-process for a few steps
(its loss, penalty, networks, data, metric and callback are the ones the run uses; evaluate.py reproduces the logged
metric), then each piece against a formula."""
from __future__ import annotations

import math
import sys

import pytest
import torch
from torch import nn

from evaluate import evaluate
from gan.metrics.registry import METRICS
from gan.utils.config import PROJECT_ROOT
from train import train

EXAMPLE = PROJECT_ROOT / "examples" / "own_parts"
#: the example command's options (examples/own_parts/README_section.md), less the logger
COMMAND = [f"hydra.searchpath=[file://{EXAMPLE}/conf]", "model=my_gan", "data=spiral", "imports=[mygan.metrics]",
           "+callbacks.spread._target_=mygan.callbacks.SampleSpread"]
#: a few steps of tiny networks on a small spiral, scored at every other generator step
TINY = ["logger=none", "trainer.accelerator=cpu", "generator_steps=4", "data.batch_size=16", "data.num_samples=500",
        "model.generator.hidden=[16]", "model.discriminator.hidden=[16]", "metrics.every_n_generator_steps=2",
        "metrics.compute.spiral.num_samples=200", "metrics.num_real=300", "callbacks.sample_grid.every_n_generator_steps=2",
        "callbacks.sample_grid.num_points=64", "callbacks.progress_bar=null", "+callbacks.spread.every_n_generator_steps=2",
        "+callbacks.spread.num_samples=64"]


@pytest.fixture
def mygan(monkeypatch):
    """The example's folder on the path (as PYTHONPATH=examples/own_parts does); its modules and its registered metric
    are gone after the test."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    before = dict(METRICS)
    yield
    for name in [m for m in sys.modules if m == "mygan" or m.startswith("mygan.")]:
        del sys.modules[name]
    METRICS.clear()
    METRICS.update(before)


def test_the_example_command_trains_logs_its_metric_and_evaluate_py_reproduces_it(mygan, make_cfg, tmp_path):
    cfg = make_cfg(COMMAND + TINY, output_dir=tmp_path / "run")
    assert cfg.loss._target_ == "mygan.losses.SoftHingeLoss"  # model=my_gan's `override /loss`
    assert cfg.metrics.compute.spiral.num_directions == 64  # metrics: ${data} found metrics/spiral.yaml on the path
    metrics, objects = train(cfg)
    from mygan.callbacks import SampleSpread
    from mygan.data import SpiralDataModule
    from mygan.losses import SoftHingeLoss
    from mygan.nets import PointDiscriminator, PointGenerator
    from mygan.penalties import RealGradientPenalty

    module = objects["module"]
    assert isinstance(module.loss, SoftHingeLoss) and module.loss.temperature == 0.5
    assert isinstance(module.penalties["real_grad"], RealGradientPenalty)
    assert isinstance(module.generator, PointGenerator) and isinstance(module.discriminator, PointDiscriminator)
    assert isinstance(objects["datamodule"], SpiralDataModule)
    spread = [c for c in objects["trainer"].callbacks if isinstance(c, SampleSpread)]
    assert len(spread) == 1 and [step for step, *_ in spread[0].history] == [2, 4]
    # the metric, the loss's extra term and the penalty's terms are logged
    for key in ("val/spiral/sliced_w1", "val/spiral/curve_distance", "train/d/within_margin", "train/d/real_grad_sq",
                "train/d/logit_drift"):
        assert key in metrics and math.isfinite(metrics[key]), key
    checkpoints = tmp_path / "run" / "checkpoints"
    assert (checkpoints / "best.ckpt").is_file()  # kept by the metric's headline, val/spiral/sliced_w1 (lower is better)
    best = objects["trainer"].checkpoint_callbacks
    assert any(c.monitor == "val/spiral/sliced_w1" and c.mode == "min" for c in best)

    for name in [m for m in sys.modules if m == "mygan" or m.startswith("mygan.")]:  # as a new process starts
        del sys.modules[name]
    del METRICS["spiral"]
    report = evaluate(make_cfg([f"ckpt_path={checkpoints / 'last.ckpt'}", "interpolation.rows=0", "nearest.rows=0"],
                               config_name="evaluate", output_dir=tmp_path / "eval"))
    # the run's imports registered the metric again; its own sample count and latent codes: the value training logged
    assert report["protocol"]["metrics"]["spiral"] == {"num_fake": 200, "extractor": "raw", "num_real": 200,
                                                       "num_directions": 64}
    assert report["values"]["spiral/sliced_w1"] == pytest.approx(metrics["val/spiral/sliced_w1"], rel=1e-12)
    assert report["values"]["spiral/curve_distance"] == pytest.approx(metrics["val/spiral/curve_distance"], rel=1e-12)


def test_soft_hinge_loss_is_its_formula_and_tends_to_the_hinge_loss(mygan):
    from gan.losses import HingeLoss
    from mygan.losses import SoftHingeLoss

    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-3.0, 0.0, 0.25])
    t = 0.5
    by_hand = (sum(t * math.log1p(math.exp((1 - x) / t)) for x in real.tolist()) / 3
               + sum(t * math.log1p(math.exp((1 + x) / t)) for x in fake.tolist()) / 3)
    terms = SoftHingeLoss(temperature=t).discriminator_loss(real, fake)
    assert terms["loss"].item() == pytest.approx(by_hand, rel=1e-6)
    assert terms["within_margin"].item() == pytest.approx(0.5)  # |logit| < 1: 1 of the 3 reals, 2 of the 3 fakes
    assert SoftHingeLoss().generator_loss(fake)["loss"].item() == pytest.approx(-fake.mean().item())
    # t softplus(u / t) lies within t log 2 of relu(u): the hinge loss as t -> 0
    cold = SoftHingeLoss(temperature=1e-3)
    assert cold.discriminator_loss(real, fake)["loss"].item() == pytest.approx(
        HingeLoss().discriminator_loss(real, fake)["loss"].item(), abs=2 * 1e-3 * math.log(2))


def test_real_gradient_penalty_on_a_linear_critic_is_gamma_half_w_squared_plus_drift(mygan):
    from mygan.penalties import RealGradientPenalty

    critic = nn.Linear(2, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, -4.0]]))
        critic.bias.fill_(0.5)
    real, fake = torch.tensor([[1.0, 1.0], [0.0, 2.0]]), torch.zeros(2, 2)
    logits_by_hand = torch.tensor([3 - 4 + 0.5, -8 + 0.5])
    drift = logits_by_hand.pow(2).mean().item()
    penalty = RealGradientPenalty(gamma=2.0, drift=0.1)
    f = lambda x: critic(x).squeeze(1)  # noqa: E731 - one logit per sample, as the module's critic gives
    terms = penalty(f, real, fake)  # no logits given: its own pass
    assert terms["real_grad_sq"].item() == pytest.approx(25.0)  # ||w||^2 at every point
    assert terms["logit_drift"].item() == pytest.approx(drift)
    assert terms["loss"].item() == pytest.approx(0.5 * 2.0 * 25.0 + 0.1 * drift)
    # with the step's own forward pass (the module marks the reals requires_grad first): the same value, and D's
    # parameters get the penalty's gradient
    real = real.clone().requires_grad_(True)
    reused = penalty(f, real, fake, f(real), f(fake))
    assert reused["loss"].item() == pytest.approx(terms["loss"].item())
    reused["loss"].backward()
    # d/dw of gamma/2 ||w||^2 = gamma w, plus drift's 2 * 0.1 * mean(logit * x)
    expected = 2.0 * critic.weight.detach() + 0.2 * (logits_by_hand[:, None] * real.detach()).mean(0)
    assert torch.allclose(critic.weight.grad, expected, atol=1e-5)


def test_networks_give_points_and_one_logit_per_point(mygan):
    from mygan.nets import PointDiscriminator, PointGenerator

    generator, discriminator = PointGenerator(8, [2], hidden=[16]), PointDiscriminator([2], hidden=[16, 16])
    samples = generator(torch.randn(5, 8))
    assert samples.shape == (5, 2)
    out = discriminator.evaluate(samples)
    assert out.logits.shape == (5,) and len(out.features) == 2 and out.features[-1].shape == (5, 16)
    assert discriminator.samples_independent  # so the module passes reals and fakes through it together


def test_spiral_data_is_seeded_on_its_curve_and_passes_the_frameworks_checks(mygan):
    from mygan.data import SpiralDataModule, spiral_points

    def built(**options):
        data = SpiralDataModule(sample_shape=[2], generator_output="identity", num_samples=300, **options)
        data.setup("fit")  # the framework's check_training_set runs after it
        return data

    data = built(std=0.0, seed=3)
    points, arms = data.train_set.tensors
    assert points.shape == (300, 2) and points.dtype == torch.float32 and set(arms.tolist()) == {0, 1}
    assert torch.equal(points, built(std=0.0, seed=3).train_set.tensors[0])  # the same set from the same seed
    assert not torch.equal(points, built(std=0.0, seed=4).train_set.tensors[0])
    # noiseless: every point at radius 2 (0.15 + 0.85 t) and angle 3 pi t + pi arm for some t in [0, 1]
    t = (points.double().norm(dim=1) / 2.0 - 0.15) / 0.85
    assert torch.allclose(spiral_points(t, arms.double(), 1.5, 2.0).float(), points, atol=1e-5)
    assert data.curve.shape == (4000, 2) and data.name == "spiral" and data.kind == "points"


def test_spiral_metric_is_its_closed_form(mygan):
    from mygan.metrics import SpiralMetric, sliced_w1

    assert METRICS["spiral"] is SpiralMetric  # registered on import
    real = torch.randn(500, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    shift = torch.tensor([0.3, -0.4], dtype=torch.float64)
    # a translation by v moves every projection on u by u . v: sliced W1 = mean over the K angles of |u_k . v|
    k = 8
    by_hand = sum(abs(math.cos(math.pi * i / k) * 0.3 - math.sin(math.pi * i / k) * 0.4) for i in range(k)) / k
    assert sliced_w1(real + shift, real, k) == pytest.approx(by_hand, rel=1e-9)
    assert sliced_w1(real[torch.randperm(500)], real, k) == 0.0  # the same set in another order

    class Curve:  # a data module's stand-in: two curve points
        name, curve = "two_points", torch.tensor([[0.0, 0.0], [4.0, 0.0]])

    fake = {"samples": torch.tensor([[0.0, 3.0], [4.0, -1.0], [1.0, 0.0]])}
    values = SpiralMetric(num_directions=k).compute(fake, {"samples": fake["samples"] + shift}, Curve())
    assert values["spiral/curve_distance"] == pytest.approx((3 + 1 + 1) / 3)  # to the nearer of the two points
    assert values["spiral/sliced_w1"] == pytest.approx(by_hand, rel=1e-9)
