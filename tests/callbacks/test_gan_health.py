"""GANHealth: each detector against its rule, each firing on a constructed failure in a real run, and
silence over a healthy run with the default thresholds."""
import csv
import io
import json
import math

import lightning.pytorch as pl
import pytest
import torch
from scipy.spatial.distance import pdist

from gan.callbacks.gan_health import (
    GANHealth,
    ModeCollapse,
    OverpoweredDiscriminator,
    VanishingGeneratorGradients,
    make_detector,
    mean_pairwise_distance,
)
from gan.losses.adversarial import NonSaturatingLoss
from gan.nets import DCGANGenerator, MLPGenerator
from gan.utils.checkpoint import load_checkpoint
from tests.conftest import tiny_overrides
from train import train


# ------------------------------------------------------------------------------------- detector rules
def test_overpowered_discriminator_needs_a_share_of_a_full_window():
    detector = OverpoweredDiscriminator(window=4, fraction=0.5, max_d_loss=0.01, max_fake_score=0.01)
    assert detector.update(0.001, 0.001) is None and detector.update(0.5, 0.001) is None  # a healthy D loss: not near
    assert detector.update(0.001, 0.2) is None  # nor is a D(G(z)) that is not near 0; 1 of 3 steps near the floor
    assert detector.update(0.001, 0.002) == {"d_loss": 0.001, "fake_score": 0.002, "d_loss_floor": 0.0,
                                             "steps_near_floor": 2, "window": 4}  # 2 of 4: half the window
    detector = OverpoweredDiscriminator(window=4, fraction=0.75, max_d_loss=0.01, max_fake_score=0.01)
    assert [detector.update(*values) for values in ((0.001, 0.001), (0.5, 0.5), (0.001, 0.001), (0.5, 0.5), (0.001, 0.001))] \
        == [None] * 5  # 2 or 3 of the last 4 near the floor, one noisy batch between: fewer than 0.75 x 4
    assert detector.update(0.001, 0.001)["steps_near_floor"] == 3  # the window slides: 3 of the last 4


def test_one_noisy_batch_in_a_row_of_wins_no_longer_hides_an_overpowering_discriminator():
    """The saturating loss with a frozen G (an audit): D near its floor 3 steps of 4, never 72 in a row."""
    detector = OverpoweredDiscriminator(window=200)
    pattern = [(0.001, 0.001)] * 3 + [(0.2, 0.1)]
    fired = next(step for step in range(1, 1000) if detector.update(*pattern[(step - 1) % 4]))
    assert fired == 200  # the first full window: 150 of its 200 steps near the floor, at least half


@pytest.mark.parametrize("tricks,floor,fake_optimum", [
    ({}, 0.0, 0.0),
    ({"real": 0.9}, 0.3251, 0.0),  # one-sided smoothing: H(0.9) = 0.325 nats, which no discriminator goes below
    ({"real_range": (0.8, 1.0)}, 0.3251, 0.0),  # noisy labels: the mean target decides
    ({"flip_prob": 0.1}, 2 * 0.3251, 0.1),  # flips: real targets average 0.9, fake ones 0.1
])
def test_overpowered_discriminator_is_judged_against_the_achievable_minimum(tricks, floor, fake_optimum):
    from gan.callbacks.gan_health import achievable_minimum
    from gan.losses.tricks import LabelTargets

    loss_floor, fake_floor = achievable_minimum(LabelTargets(**tricks))
    assert loss_floor == pytest.approx(floor, abs=1e-4) and fake_floor == pytest.approx(fake_optimum)
    detector = OverpoweredDiscriminator(window=2, fraction=1.0)
    detector.loss_floor, detector.fake_score_floor = loss_floor, fake_floor
    # a discriminator at its optimum: with smoothing its loss is 0.325, far above the absolute 0.005
    at_optimum = (loss_floor + 0.001, fake_floor + 0.001)
    assert detector.update(*at_optimum) is None and detector.update(*at_optimum)["steps_near_floor"] == 2
    assert detector.update(loss_floor + 0.01, fake_floor) is None  # further from it than max_d_loss


def test_vanishing_gradients_compares_recent_median_to_early_median():
    detector = VanishingGeneratorGradients(reference_steps=3, window=3, min_ratio=0.01)
    assert all(detector.update(norm) is None for norm in (1.0, 2.0, 4.0))  # early median: 2
    assert all(detector.update(norm) is None for norm in (1.5, 1.5, 0.5, 0.01))  # recent medians 1.5, 0.5
    evidence = detector.update(0.01)  # window (0.5, 0.01, 0.01): median 0.01 < 0.01 x 2
    assert evidence == {"early_median_norm": 2.0, "recent_median_norm": 0.01, "ratio": 0.005}


def test_mode_collapse_schedule_and_rule():
    detector = ModeCollapse(every_n_generator_steps=50, start_generator_step=100, min_diversity_ratio=0.1, min_class_coverage=0.5)
    assert [s for s in range(0, 301, 25) if detector.due(s)] == [100, 150, 200, 250, 300]
    assert detector.check(0.2) is None and detector.check(0.2, class_coverage=0.6) is None
    assert detector.check(0.05) == {"diversity_ratio": 0.05, "min_diversity_ratio": 0.1}
    assert detector.check(0.2, class_coverage=0.3) == {"diversity_ratio": 0.2, "min_diversity_ratio": 0.1,
                                                       "class_coverage": 0.3, "min_class_coverage": 0.5}
    assert ModeCollapse(min_class_coverage=None).check(0.2, class_coverage=0.0) is None


def test_mode_collapse_fires_on_modes_lost_not_on_modes_not_yet_found():
    detector = ModeCollapse(min_mode_retention=0.5)
    # a slow start: 2 modes, then more and more (sngan's grid preset: 8.6 effective modes at step 600, 20 at 3,000)
    assert [detector.check(1.0, effective_modes=m, generator_step=s) for s, m in ((500, 2.0), (600, 8.6), (700, 20.0))] == [None] * 3
    assert detector.check(1.0, effective_modes=10.5, generator_step=800) is None  # above half of the best, 20
    assert detector.check(1.0, effective_modes=9.9, generator_step=900) == {
        "diversity_ratio": 1.0, "min_diversity_ratio": 0.1, "effective_modes": 9.9, "best_effective_modes": 20.0,
        "best_at_generator_step": 700, "min_mode_retention": 0.5}
    resumed = ModeCollapse(min_mode_retention=0.5)
    resumed.load_state_dict(detector.state_dict())  # the best so far carries over a resume
    assert resumed.best_effective_modes == (20.0, 700) and resumed.check(1.0, effective_modes=9.0, generator_step=1000)
    off = ModeCollapse(min_mode_retention=None)
    assert [off.check(1.0, effective_modes=m, generator_step=s) for s, m in ((500, 20.0), (600, 1.0))] == [None, None]
    assert ModeCollapse().check(1.0, effective_modes=None) is None  # data whose modes are not known


def test_mean_pairwise_distance_matches_scipy():
    samples = torch.randn(20, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    assert mean_pairwise_distance(samples) == pytest.approx(pdist(samples.flatten(1).double().numpy()).mean(), rel=1e-5)


@pytest.mark.parametrize("kind,options,match", [
    # led by the option's key, as the user sets it (it used to be gan_health.mode_collapse.action is 'explode')
    ("mode_collapse", {"action": "explode"}, r"^callbacks.gan_health.mode_collapse.action=explode: expected one of warn, stop, stop_and_keep_last_healthy$"),
    ("divergence", {"max_score": 1}, r"^callbacks.gan_health.divergence: unknown option\(s\) \['max_score'\]"),
    # numbers out of range: each used to fire at once, never, or fail mid-training (checked against the old code:
    # a window of 0 made the vanishing-gradient deque raise, one sample gave a NaN diversity ratio)
    ("mode_collapse", {"num_samples": 1}, r"^callbacks.gan_health.mode_collapse.num_samples=1: expected an integer >= 2$"),
    ("mode_collapse", {"every_n_generator_steps": -1}, r"mode_collapse.every_n_generator_steps=-1: expected an integer >= 0$"),
    ("mode_collapse", {"min_class_coverage": 1.5}, r"min_class_coverage=1.5: expected a number from 0 to 1 or null$"),
    ("vanishing_generator_gradients", {"window": 0}, r"vanishing_generator_gradients.window=0: expected an integer >= 1$"),
    ("vanishing_generator_gradients", {"reference_steps": "abc"}, r"reference_steps=abc: expected an integer >= 1$"),
    ("discriminator_overpowers", {"window": True}, r"discriminator_overpowers.window=True: expected an integer >= 1$"),
    ("discriminator_overpowers", {"max_fake_score": 2}, r"max_fake_score=2: expected a number from 0 to 1$"),
    ("divergence", {"max_score_gap": -1.0}, r"divergence.max_score_gap=-1.0: expected a number >= 0$"),
    ("ignored_labels", {"min_label_effect": -0.1}, r"^callbacks.gan_health.ignored_labels.min_label_effect=-0.1: expected a number >= 0$"),
    ("ignored_labels", {"start_generator_step": 1.5}, r"ignored_labels.start_generator_step=1.5: expected an integer >= 0$"),
])
def test_bad_options_fail_with_one_line(kind, options, match):
    with pytest.raises(ValueError, match=match):
        make_detector(kind, options)


def test_options_in_range_are_accepted():
    assert make_detector("mode_collapse", {"num_samples": 2, "min_class_coverage": None, "min_diversity_ratio": 0}).num_samples == 2
    never = make_detector("mode_collapse", {"every_n_generator_steps": 0, "start_generator_step": 0})  # 0: off
    assert not any(never.due(step) for step in range(1, 1000))
    assert make_detector("vanishing_generator_gradients", {"window": 1, "min_ratio": 0.5}).window == 1
    assert make_detector("divergence", {"max_score_gap": 10}).max_score_gap == 10


def test_fired_kinds_and_detector_windows_survive_a_checkpoint_round_trip():
    health = GANHealth(vanishing_generator_gradients={"reference_steps": 2, "window": 3})
    health.events = [{"kind": "divergence", "generator_step": 7, "evidence": {"train/d/loss": float("nan")}}]
    health.detectors["discriminator_overpowers"].update(0.0, 0.0)
    for norm in (1.0, 2.0, 3.0, 4.0):
        health.detectors["vanishing_generator_gradients"].update(norm)
    # one iteration gathered, not yet checked: its D loss, and its generator parameters' gradient norms 3 and 4
    health._keys, health._row_steps = ("train/d/loss",), [(8, 16, True)]
    health._rows = [([torch.tensor(0.5)], (torch.tensor(3.0), torch.tensor(4.0)))]
    saved = io.BytesIO()
    torch.save(health.state_dict(), saved)  # what a checkpoint holds, read back as checkpoints are
    saved.seek(0)
    restored = GANHealth(vanishing_generator_gradients={"reference_steps": 2, "window": 3})
    restored.load_state_dict(torch.load(saved, weights_only=True))
    assert restored.fired == {"divergence"}
    assert restored.events[0]["evidence"] == {"train/d/loss": "nan"}  # checkpoints hold plain, finite JSON values
    assert restored.detectors["discriminator_overpowers"].state_dict() == {"recent": [True]}
    assert restored.detectors["vanishing_generator_gradients"].state_dict() == {"early": [1.0, 2.0], "recent": [3.0, 4.0]}
    # an iteration gathered but not yet checked is checked after the resume; its total norm is sqrt(3^2 + 4^2)
    assert restored._restored_rows == [({"train/d/loss": 0.5, "grad/g/norm": 5.0}, (8, 16, True))]


# ------------------------------------------------------------------------------- constructed failures
def health_overrides(model, data, steps, *extra):
    return [*tiny_overrides(model, data, steps=steps), "logger=csv", "trainer.log_every_n_steps=1",
            "callbacks.sample_grid.every_n_generator_steps=1000", *extra]


def events_of(run_dir):
    path = run_dir / "health.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def logged(run_dir, key):
    with open(run_dir / "csv" / "metrics.csv") as handle:
        return [(float(row["train/generator_step"]), float(row[key])) for row in csv.DictReader(handle) if row.get(key)]


@pytest.mark.slow
def test_overpowered_discriminator_fires_and_stops(make_cfg, tmp_path):
    # a generator that cannot learn (learning rate 1e-8) against a fast discriminator
    cfg = make_cfg(health_overrides("dcgan", "digits", 300, "optimizer.generator.lr=1e-8", "optimizer.discriminator.lr=1e-2",
                                    "callbacks.gan_health.discriminator_overpowers.window=30",
                                    "callbacks.gan_health.discriminator_overpowers.action=stop"))
    _, objects = train(cfg)
    run = tmp_path / "run"
    event = events_of(run)[0]
    assert event["kind"] == "discriminator_overpowers"
    assert event["evidence"]["d_loss"] < 0.005 and event["evidence"]["fake_score"] < 0.005
    assert event["evidence"]["steps_near_floor"] >= 15 and event["evidence"]["window"] == 30
    # a window's verdict waits for the next check of the gathered rows, every sync_every_n_iterations (10)
    assert objects["module"].generator_steps == math.ceil(event["generator_step"] / 10) * 10 < 300
    assert logged(run, "health/discriminator_overpowers") == [(event["generator_step"], 1.0)]


@pytest.mark.slow
def test_overpowered_discriminator_is_seen_through_an_auxiliary_class_loss(make_cfg, tmp_path):
    """AC-GAN's D loss includes its class loss, which stays above the margin: the check read that total and could not
    fire (a review); it reads the adversarial part now. Margins of 0.05: this D's adversarial loss hovers around the
    default 0.005 (0.001-0.02 over steps 100-300), so with 0.005 whether half of a window fell below it depended on
    the host's arithmetic (it fired on one host and not on another, 2026-12-07); the total stays above 0.6."""
    margin = 0.05
    cfg = make_cfg(health_overrides("acgan", "digits", 300, "optimizer.generator.lr=1e-8", "optimizer.discriminator.lr=1e-2",
                                    "callbacks.gan_health.discriminator_overpowers.window=30",
                                    f"callbacks.gan_health.discriminator_overpowers.max_d_loss={margin}",
                                    f"callbacks.gan_health.discriminator_overpowers.max_fake_score={margin}",
                                    "callbacks.gan_health.discriminator_overpowers.action=stop"))
    train(cfg)
    run = tmp_path / "run"
    event = events_of(run)[0]
    assert event["kind"] == "discriminator_overpowers" and event["evidence"]["d_loss"] < margin
    step = event["generator_step"]
    totals = dict(logged(run, "train/d/loss"))
    adversarial = dict(logged(run, "train/d/adversarial"))
    assert adversarial[step] == pytest.approx(event["evidence"]["d_loss"], rel=1e-5)
    assert min(totals.values()) > margin  # the total, class loss included, never came near the floor


def test_samples_that_run_away_while_the_losses_stay_finite_are_divergence(make_cfg, tmp_path, caplog):
    """A sigmoid loss has no score gap to watch: DCGAN on the grid at lr=10 spread its samples thousands of times
    wider than the data with finite losses and was reported healthy (an audit)."""
    cfg = make_cfg(["model=dcgan", "data=toy2d_grid", "generator_steps=100", "logger=csv", "metrics=none", "callbacks.progress_bar=null",
                    "callbacks.sample_grid=null", "optimizer.generator.lr=10", "optimizer.discriminator.lr=10",
                    "callbacks.gan_health.mode_collapse.every_n_generator_steps=20",  # from step 20; collapse from 500
                    "model.discriminator.norm=batch"])  # D as the toy preset had it until 2026-12-07: it runs away at lr=10
    with caplog.at_level("WARNING", logger="gan"):
        _, objects = train(cfg)
    event = objects["stopped_by"]
    assert (event["kind"], event["generator_step"], objects["module"].generator_steps) == ("divergence", 20, 20)
    assert event["evidence"]["diversity_ratio"] > 10 == event["evidence"]["max_diversity_ratio"]
    assert logged(tmp_path / "run", "health/diversity_ratio") == []  # before start_generator_step only the spread is checked
    assert all(math.isfinite(value) for _, value in logged(tmp_path / "run", "train/d/loss"))  # no NaN to catch
    warning = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("GAN health: divergence"))
    assert "stopping training; no checkpoint had been saved before it. Try:" in warning  # it said "checkpoint: None"
    # said there once, not also in a line of its own printed before it (a DDP audit)
    assert [r.getMessage() for r in caplog.records if "no checkpoint" in r.getMessage()] == [warning]
    detector = make_detector("divergence", {})
    assert detector.check_spread(2.78) is None and detector.check_spread(10.5) == {"diversity_ratio": 10.5, "max_diversity_ratio": 10.0}


class SaturateGeneratorOutput(pl.Callback):
    """Test-only failure injection: at one generator step, scale the generator's output layer so its tanh
    saturates (what a too-large generator learning rate can do); its gradients then vanish."""

    def __init__(self, at_generator_step: int, scale: float = 1e6):
        self.at, self.scale = at_generator_step, scale

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.generator_steps == self.at:
            last_linear = [m for m in pl_module.generator.modules() if isinstance(m, torch.nn.Linear)][-1]
            with torch.no_grad():
                last_linear.weight.mul_(self.scale)
                last_linear.bias.mul_(self.scale)


@pytest.mark.slow
def test_vanishing_generator_gradients_fire(make_cfg, tmp_path):
    cfg = make_cfg(health_overrides("gan", "digits", 130, "+callbacks.saturate._target_=tests.callbacks.test_gan_health.SaturateGeneratorOutput",
                                    "+callbacks.saturate.at_generator_step=55",
                                    "callbacks.gan_health.vanishing_generator_gradients.window=20"))
    train(cfg)
    event = {e["kind"]: e for e in events_of(tmp_path / "run")}["vanishing_generator_gradients"]
    # the window's median drops once more than half of its 20 steps come after the injection
    assert 55 + 11 <= event["generator_step"] <= 55 + 20
    assert event["evidence"]["ratio"] < 1e-3
    assert event["evidence"]["ratio"] == pytest.approx(event["evidence"]["recent_median_norm"] / event["evidence"]["early_median_norm"])


@pytest.mark.parametrize("model,data,generator_class", [("gan", "toy2d_ring", MLPGenerator), ("dcgan", "digits", DCGANGenerator)])
def test_generator_ignoring_its_noise_is_mode_collapse(make_cfg, tmp_path, monkeypatch, model, data, generator_class):
    original = generator_class.generate
    monkeypatch.setattr(generator_class, "generate", lambda self, z, labels=None: original(self, torch.zeros_like(z), labels))
    cfg = make_cfg(health_overrides(model, data, 20, "callbacks.gan_health.mode_collapse.start_generator_step=10",
                                    "callbacks.gan_health.mode_collapse.every_n_generator_steps=10"))
    train(cfg)
    run = tmp_path / "run"
    events = events_of(run)
    assert [(e["kind"], e["generator_step"]) for e in events] == [("mode_collapse", 10)]  # once, though 20 also collapsed
    assert events[0]["evidence"]["diversity_ratio"] == 0.0
    assert logged(run, "health/diversity_ratio") == [(10.0, 0.0), (20.0, 0.0)]
    if data == "digits":  # identical images: one class read, out of the (up to) 10 read in real digits
        assert events[0]["evidence"]["class_coverage"] <= 1 / 9
        assert [step for step, _ in logged(run, "health/class_coverage")] == [10.0, 20.0]
        # the run's own preset, read from its Hydra job as in train.py, sets the optimizers: TTUR needs presets=none
        assert "use TTUR's learning rates (optimizer.generator.lr=0.0001 optimizer.discriminator.lr=0.0004; the per-data " \
               "preset tuned/dcgan/digits sets" in events[0]["remedy"]


class KeepTwoModesAfter(pl.Callback):
    """Test-only failure injection: from one generator step on, the generator's 2D output is moved onto two
    opposite modes of the ring (or ``second_mode`` and the first; every other sample on each), keeping its offsets
    from its own mean: modes lost while the samples stay spread (a diversity ratio far above 0.1)."""

    def __init__(self, at_generator_step: int, second_mode: int | None = None):
        self.at, self.second, self.handle = at_generator_step, second_mode, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if pl_module.generator_steps >= self.at and self.handle is None:
            modes = trainer.datamodule.modes.float()
            pair = torch.stack([modes[0], modes[len(modes) // 2 if self.second is None else self.second]])

            def two_modes(module, inputs, output):
                side = torch.arange(len(output), device=output.device) % 2  # half the samples on each
                return pair.to(output)[side] + 0.01 * (output - output.mean(dim=0))
            self.handle = pl_module.sampling_generator.register_forward_hook(two_modes)  # what the checks sample (EMA)


def test_modes_the_generator_had_and_lost_are_mode_collapse(make_cfg, tmp_path):
    """The effective number of modes dropping below min_mode_retention x its best fires, where the diversity
    ratio does not (an audit's partial collapses on the toys kept ratios of 0.2-1.3, above 0.1)."""
    cfg = make_cfg(health_overrides("gan", "toy2d_ring", 40, "callbacks.gan_health.mode_collapse.start_generator_step=10",
                                    "callbacks.gan_health.mode_collapse.every_n_generator_steps=10",
                                    "+callbacks.two_modes._target_=tests.callbacks.test_gan_health.KeepTwoModesAfter",
                                    "+callbacks.two_modes.at_generator_step=25"))
    train(cfg)
    run = tmp_path / "run"
    effective = logged(run, "health/effective_modes")
    assert [step for step, _ in effective] == [10.0, 20.0, 30.0, 40.0]
    best = max(value for step, value in effective if step < 25)
    assert best > 4.0 and all(value <= 2.0 for step, value in effective if step > 25)  # two modes: at most 2
    events = events_of(run)
    assert [(e["kind"], e["generator_step"]) for e in events] == [("mode_collapse", 30)]
    evidence = events[0]["evidence"]
    assert evidence["effective_modes"] == effective[2][1] and evidence["best_effective_modes"] == best
    assert evidence["best_at_generator_step"] in (10, 20) and evidence["min_mode_retention"] == 0.5
    assert evidence["diversity_ratio"] > 0.1  # the spread alone did not see it


@pytest.mark.parametrize("floor", [0.15, None])
def test_a_generator_that_never_spread_over_the_modes_is_mode_collapse(make_cfg, tmp_path, floor):
    """Two of the grid's 25 modes from the start: no earlier best to drop from, and a diversity ratio far above 0.1,
    so nothing fired (an audit: the minimax GAN on the grid, one effective mode from step 500 on). The level floor,
    min_modes_of_data x the real draw's own effective modes, does."""
    cfg = make_cfg(health_overrides("gan", "toy2d_grid", 30, "callbacks.gan_health.mode_collapse.start_generator_step=10",
                                    "callbacks.gan_health.mode_collapse.every_n_generator_steps=10",
                                    f"callbacks.gan_health.mode_collapse.min_modes_of_data={floor if floor else 'null'}",
                                    "+callbacks.two_modes._target_=tests.callbacks.test_gan_health.KeepTwoModesAfter",
                                    "+callbacks.two_modes.at_generator_step=1", "+callbacks.two_modes.second_mode=-1"))
    train(cfg)  # the grid's opposite corners, from the first step (where the EMA copy, which the checks sample, exists)
    run = tmp_path / "run"
    effective = logged(run, "health/effective_modes")
    assert [step for step, _ in effective] == [10.0, 20.0, 30.0] and all(value <= 2.0 for _, value in effective)
    events = events_of(run)
    if floor is None:
        assert events == []
        return
    # below the floor at every check: reported at the third in a row (min_modes_of_data_checks)
    assert [(e["kind"], e["generator_step"]) for e in events] == [("mode_collapse", 30)]
    evidence = events[0]["evidence"]
    assert evidence["effective_modes"] == effective[2][1] and evidence["min_modes_of_data"] == 0.15
    assert evidence["checks_below_floor"] == 3
    assert 20.0 < evidence["data_effective_modes"] <= 25.0  # the real draw of 256 samples over 25 modes
    assert evidence["diversity_ratio"] > 0.1 and "best_effective_modes" not in evidence


def test_the_level_floor_sits_below_a_slow_start_and_catches_one_mode_of_the_ring():
    # min_modes_of_data 0.15 (a fresh detector each: no best to drop from), at 3 checks in a row
    assert ModeCollapse().check(1.0, effective_modes=9.0, generator_step=500, data_effective_modes=24.6) is None  # sngan's start
    assert ModeCollapse().check(1.0, effective_modes=4.0, generator_step=500, data_effective_modes=24.6) is None
    one_mode = ModeCollapse()
    for step in (500, 600):
        assert one_mode.check(1.0, effective_modes=1.0, generator_step=step, data_effective_modes=7.9) is None
    assert one_mode.check(1.0, effective_modes=1.0, generator_step=700, data_effective_modes=7.9) == {
        "diversity_ratio": 1.0, "min_diversity_ratio": 0.1, "effective_modes": 1.0, "data_effective_modes": 7.9,
        "min_modes_of_data": 0.15, "checks_below_floor": 3}
    assert ModeCollapse(min_modes_of_data_checks=1).check(1.0, effective_modes=1.0, data_effective_modes=7.9) is not None
    assert ModeCollapse().check(1.0, effective_modes=2.0, data_effective_modes=7.9) is None  # 2 of 8 ring modes: above


def test_a_slow_start_climbs_past_the_level_floor_and_a_run_below_it_carries_over_a_resume():
    # lsgan's grid preset of 2026-12-07, seed 1 (benchmarks/health_checks.py): 2.83 of 25 at step 500, under the floor
    # (0.15 x 23.72 = 3.56), which reported it there when one check sufficed; then 4.86, 6.63, 8.2 ...
    slow = ModeCollapse()
    for step, modes in zip(range(500, 1100, 100), (2.83, 4.86, 6.63, 8.2, 9.27, 10.23)):
        assert slow.check(1.0, effective_modes=modes, generator_step=step, data_effective_modes=23.72) is None
    dips = ModeCollapse()  # under, above, under, under: not three in a row
    for step, modes in zip(range(500, 900, 100), (2.0, 4.0, 2.0, 2.0)):
        assert dips.check(1.0, effective_modes=modes, generator_step=step, data_effective_modes=23.72) is None
    resumed = ModeCollapse()
    resumed.load_state_dict(dips.state_dict())
    assert resumed.checks_below_floor == 2
    assert resumed.check(1.0, effective_modes=2.0, generator_step=900, data_effective_modes=23.72)["checks_below_floor"] == 3
    older = ModeCollapse()
    older.load_state_dict({"best_effective_modes": [4.0, 600]})  # a checkpoint from before the count
    assert older.checks_below_floor == 0 and older.best_effective_modes == (4.0, 600)


def test_effective_modes_are_read_from_the_toys_components_and_the_digits_classes():
    from types import SimpleNamespace

    from gan.data.toy2d import grid_modes

    health, modes = GANHealth(), grid_modes([-2, 0, 2])
    trainer = SimpleNamespace(datamodule=SimpleNamespace(modes=modes))
    on_three = modes[[0, 0, 4, 4, 8, 8]] + 0.3  # near modes 0, 4 and 8, equally often
    assert health.effective_modes(trainer, on_three) == pytest.approx(3.0)
    assert health.effective_modes(trainer, modes[[0, 0, 0, 1]]) == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))
    images = torch.zeros(4, 1, 28, 28)
    assert health.effective_modes(SimpleNamespace(datamodule=None), images) is None  # not digits: no modes known
    health._reads_digits = True
    assert health.effective_modes(SimpleNamespace(datamodule=None), images) == 1.0  # one class read in 4 equal images


def test_watching_does_not_change_training(make_cfg, tmp_path):
    """Same seed, same losses with and without the insight callbacks (which sample, classify and read grads)."""
    losses = []
    for name, extra in (("watched", ["callbacks.gan_health.mode_collapse.start_generator_step=2",
                                     "callbacks.gan_health.mode_collapse.every_n_generator_steps=2",
                                     "callbacks.grad_norm.every_n_generator_steps=1"]),
                        ("unwatched", ["callbacks.gan_health=null", "callbacks.grad_norm=null", "callbacks.generator_step_axis=null"])):
        train(make_cfg(health_overrides("dcgan", "digits", 5, *extra), output_dir=tmp_path / name))
        with open(tmp_path / name / "csv" / "metrics.csv") as handle:
            losses.append([(row["train/d/loss"], row["train/g/loss"]) for row in csv.DictReader(handle) if row.get("train/g/loss")])
    assert len(losses[0]) == 5 and losses[0] == losses[1]


def nan_from_d_step(first: int, monkeypatch) -> None:
    calls = {"n": 0}
    original = NonSaturatingLoss.discriminator_loss

    def poisoned(self, *args, **kwargs):
        terms = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] >= first:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(NonSaturatingLoss, "discriminator_loss", poisoned)


def test_nan_loss_is_divergence_and_keeps_the_last_healthy_checkpoint(make_cfg, tmp_path, monkeypatch):
    nan_from_d_step(13, monkeypatch)
    cfg = make_cfg(health_overrides("gan", "toy2d_ring", 30, "callbacks.gan_health.divergence.action=stop_and_keep_last_healthy",
                                    "callbacks.model_checkpoint.every_n_train_steps=10"))  # every 5 generator steps
    _, objects = train(cfg)
    run = tmp_path / "run"
    (event,) = events_of(run)
    assert event["kind"] == "divergence" and event["generator_step"] == 13
    assert event["evidence"]["train/d/loss"] == "nan"  # written as a string: JSON has no NaN
    assert objects["module"].generator_steps == 13
    assert (objects["stopped_by"]["kind"], objects["stopped_by"]["generator_step"]) == ("divergence", 13)
    healthy = load_checkpoint(event["last_healthy_checkpoint"])
    assert healthy["gan_counters"]["generator_steps"] == 10  # the newest save before step 13
    assert all(torch.isfinite(v).all() for v in healthy["state_dict"].values() if v.is_floating_point())
    # the end-of-training save refused the non-finite weights: last.ckpt is still the step-10 one
    last = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert last["gan_counters"]["generator_steps"] == 10
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


class CheckEvery(pl.Callback):
    """Gives the health check an accelerator's cadence on CPU (where it also reads G's loss at every iteration)."""

    def __init__(self, iterations: int):
        self.iterations = iterations

    def on_train_start(self, trainer, pl_module):  # runs after GANHealth's, which sets the CPU cadence
        health = next(c for c in trainer.callbacks if isinstance(c, GANHealth))
        health._sync_every_now, health._watch_generator_loss = self.iterations, False


def test_accelerator_cadence_finds_the_exact_step_and_checks_before_every_save(make_cfg, tmp_path, monkeypatch):
    """Rows are checked every 10 iterations, and before each checkpoint save: NaN from generator step 13 is
    reported at step 13 and stops the run at the save of step 14, not at the regular check of step 20."""
    nan_from_d_step(13, monkeypatch)
    cfg = make_cfg(health_overrides("gan", "toy2d_ring", 30, "callbacks.model_checkpoint.every_n_train_steps=14",  # every 7 G steps
                                    "+callbacks.check_every._target_=tests.callbacks.test_gan_health.CheckEvery",
                                    "+callbacks.check_every.iterations=10"))
    _, objects = train(cfg)
    (event,) = events_of(tmp_path / "run")
    assert (event["kind"], event["generator_step"], event["global_step"]) == ("divergence", 13, 26)
    assert objects["module"].generator_steps == 14
    assert load_checkpoint(event["last_healthy_checkpoint"])["gan_counters"]["generator_steps"] == 7
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["gan_counters"]["generator_steps"] == 7


@pytest.mark.slow
def test_silent_over_a_healthy_toy_run_with_default_thresholds(make_cfg, tmp_path):
    # the MLP GAN with Adam on the ring spreads out; (the paper's SGD setup collapses there, as expected)
    # default thresholds; only the first mode-collapse check is moved from 500 to 200 to keep the run short
    cfg = make_cfg(health_overrides("gan", "toy2d_ring", 250, "optimizer=adam_dcgan", "data.batch_size=128",
                                    "model.generator.hidden=[64,64]", "model.discriminator.hidden=[64]",
                                    "callbacks.gan_health.mode_collapse.start_generator_step=200"))
    _, objects = train(cfg)
    run = tmp_path / "run"
    assert events_of(run) == []
    health = next(c for c in objects["trainer"].callbacks if type(c).__name__ == "GANHealth")
    assert health.events == [] and health.detectors["vanishing_generator_gradients"]._recent  # every detector ran
    ratio = logged(run, "health/diversity_ratio")
    assert [step for step, _ in ratio] == [200.0] and ratio[0][1] > 0.1
    assert all(math.isfinite(v) for _, v in logged(run, "grad/g/norm"))


# ------------------------------------------------------------------------------------- mixed precision
def fit_fp16_with_overflowing_scaler(make_cfg, health_on: bool = True):
    """16-mixed with a GradScaler whose scale starts at 2^60: the scaled fp16 gradients overflow and the
    scaler skips steps (halving its scale each time) until the scale fits, as it does by design in long runs.
    CPU autocast runs fp16 too, so the path Lightning takes on a GPU is exercised here."""
    import lightning.pytorch as pl
    from lightning.pytorch.plugins.precision import MixedPrecision

    from gan.callbacks import GradNorm
    from gan.utils.instantiate import build, build_module

    cfg = make_cfg(tiny_overrides("gan", "toy2d_ring", steps=30) + ["metrics=none"])
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**60)
    health, grad_norm = GANHealth(), GradNorm(every_n_generator_steps=1)
    logged = []

    class RecordNorms(pl.Callback):
        def on_gan_iteration_end(self, trainer, pl_module):
            logged.append(dict(grad_norm.last_logged))
            grad_norm.last_logged = {}

    trainer = pl.Trainer(max_steps=cfg.trainer.max_steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)], callbacks=[grad_norm, health, RecordNorms()])
    trainer.fit(build_module(cfg), datamodule=build(cfg.data))
    return health, logged, scaler


def test_fp16_steps_the_scaler_skipped_are_not_divergence_and_not_logged(make_cfg):
    health, logged, scaler = fit_fp16_with_overflowing_scaler(make_cfg)
    assert scaler.get_scale() < 2.0**20  # it did overflow, many times
    skipped = [i for i, row in enumerate(logged) if "grad/g/norm" not in row]
    assert len(skipped) >= 10 and skipped == list(range(len(skipped)))  # the first iterations, until the scale fit
    assert all(math.isfinite(v) for row in logged for v in row.values())  # grad/* holds applied gradients only
    assert health.events == []


def test_fp16_skip_rule_is_what_keeps_divergence_silent(make_cfg, monkeypatch):
    """The test above is not vacuous: read without the scaler in mind, the overflows are divergence."""
    import gan.callbacks.gan_health as gan_health

    monkeypatch.setattr(gan_health, "scaler_skips_nonfinite_steps", lambda trainer: False)
    health, _, _ = fit_fp16_with_overflowing_scaler(make_cfg)
    assert [e["kind"] for e in health.events] == ["divergence"] and health.events[0]["generator_step"] == 1
    assert list(health.events[0]["evidence"]) == ["grad/g/norm"] and not math.isfinite(health.events[0]["evidence"]["grad/g/norm"])


def test_critic_scores_may_drift_together_but_not_apart():
    from gan.callbacks.gan_health import Divergence

    divergence = Divergence(max_score_gap=1e4)
    drifted = {"train/d/loss": -3.0, "train/d/real_score": 2.0e6, "train/d/fake_score": 2.0e6 - 3.0}
    assert divergence.check(drifted, raw_scores=True) is None  # a harmless WGAN critic offset
    apart = {"train/d/real_score": 1.5e4, "train/d/fake_score": -1.0e3}
    assert divergence.check(apart, raw_scores=True) == {**apart, "max_score_gap": 1e4}
    assert list(divergence.check({"train/g/loss": math.nan, "train/d/loss": 0.5}, raw_scores=False)) == ["train/g/loss"]


def test_critic_scores_apart_in_either_direction_are_a_divergence():
    # fakes scored far above reals is as diverged as the other way round (only real > fake was tested: a mutation)
    from gan.callbacks.gan_health import Divergence

    reversed_gap = {"train/d/real_score": -1.0e3, "train/d/fake_score": 1.5e4}
    assert Divergence(max_score_gap=1e4).check(reversed_gap, raw_scores=True) == {**reversed_gap, "max_score_gap": 1e4}


@pytest.mark.parametrize("kind", ["discriminator_overpowers", "vanishing_generator_gradients", "mode_collapse", "divergence",
                                  "ignored_labels"])
def test_each_detector_s_python_defaults_are_the_shipped_config_s(kind):
    """A user of the Python API (GANHealth(...) without a config) gets the thresholds the README documents and the
    shipped config sets; a default changed on one side only went unnoticed (a mutation of two defaults)."""
    from dataclasses import fields

    from omegaconf import OmegaConf

    from gan.callbacks.gan_health import DETECTORS
    from gan.utils.config import PROJECT_ROOT

    shipped = OmegaConf.to_container(OmegaConf.load(PROJECT_ROOT / "conf" / "callbacks" / "gan_health.yaml").gan_health[kind])
    defaults = {f.name: f.default for f in fields(DETECTORS[kind])}
    assert set(shipped) <= set(defaults)
    assert {name: defaults[name] for name in shipped} == shipped


def test_class_coverage_is_read_on_digit_data_only():
    health = GANHealth()
    digits_shaped = torch.zeros(4, 1, 28, 28)
    assert health.class_coverage(digits_shaped, digits_shaped) is None  # e.g. Fashion-MNIST: same shape, no digits
    health._reads_digits = True
    assert health.class_coverage(digits_shaped, digits_shaped) == 1.0


def test_more_mode_collapse_samples_than_the_fixed_noise_codes_are_refused():
    """sample_fixed draws at most the module's fixed codes: 2000 compared 1024 fakes with 2000 reals."""
    from types import SimpleNamespace

    module = SimpleNamespace(fixed_noise=torch.zeros(1024, 2))
    with pytest.raises(ValueError, match=r"^callbacks.gan_health.mode_collapse.num_samples=2000: expected at most 1024, as many "
                                         r"as the module's fixed noise codes \(\+model.num_fixed_samples=1024 sets their number\)$"):
        GANHealth(mode_collapse={"num_samples": 2000}).setup(None, module, "fit")
    GANHealth(mode_collapse={"num_samples": 1024}).setup(None, module, "fit")
    GANHealth(mode_collapse={"num_samples": 2000, "every_n_generator_steps": 0}).setup(None, module, "fit")  # no checks


def test_every_option_a_remedy_names_is_one_a_run_takes(make_cfg):
    """Each remedy's overrides compose and build (an audit found tricks named without their options)."""
    import re

    from gan.callbacks.gan_health import REMEDIES
    from gan.utils.instantiate import build_module

    named = sorted({token for text in REMEDIES.values() for token in re.findall(r"\b((?:model|loss|optimizer)[\w.]*=[\w.]+)", text)})
    assert {"model.discriminator.spectral_norm=true", "model.discriminator.minibatch=stddev", "optimizer=ttur", "model=wgan_gp"} <= set(named)
    assert "model.generator.conditioning=embedding" in named
    for override in named:  # a conditioning option on a conditional model
        build_module(make_cfg([*tiny_overrides("cgan" if ".conditioning=" in override else "dcgan", "digits"), override]))


def test_remedies_name_this_runs_own_levers():
    from types import SimpleNamespace

    from gan.callbacks.gan_health import REMEDIES, remedy
    from gan.schedules import Cosine, OptimizerSetting

    plain = SimpleNamespace(schedules={}, penalties={})
    assert remedy("divergence", plain) == REMEDIES["divergence"]
    scheduled = SimpleNamespace(schedules={"lr": OptimizerSetting("lr", Cosine(1e-3, 1e-4, 10))}, penalties={"r1r2": object()})
    text = remedy("discriminator_overpowers", scheduled)
    assert text.endswith("; this run's learning rates follow model.schedules.lr, which overwrites optimizer.*.lr and optimizer=ttur "
                         "at every step: change its values (model.schedules.lr.value.start / .end)")
    assert "constrain D more (a larger weight or gamma for its r1r2; spectral norm" in remedy("divergence", scheduled)
    # a schedule per network (sngan's toy preset): both named, as each overwrites its own optimizer's rate
    apart = SimpleNamespace(schedules={"lr_d": OptimizerSetting("lr", Cosine(1e-3, 1e-4, 10), networks=("discriminator",)),
                                       "lr_g": OptimizerSetting("lr", Cosine(2e-4, 2e-5, 10), networks=("generator",))},
                            penalties={})
    assert remedy("discriminator_overpowers", apart).endswith(
        "; this run's learning rates follow model.schedules.lr_d and model.schedules.lr_g, which overwrite optimizer.*.lr "
        "and optimizer=ttur at every step: change their values (model.schedules.lr_d.value.start / .end and "
        "model.schedules.lr_g.value.start / .end)")
    assert "model.schedules" not in remedy("discriminator_overpowers", SimpleNamespace(schedules={}, penalties={}))
    # TTUR is not advised where a schedule overwrites it (it was, in the line that then said so: a README walk-through)
    collapse = remedy("mode_collapse", scheduled)
    assert collapse.startswith("lower the learning rates (optimizer.generator.lr, optimizer.discriminator.lr), a Wasserstein")
    assert "use TTUR" not in collapse and "use TTUR (optimizer=ttur)" in remedy("mode_collapse", plain)


def test_ttur_is_advised_as_learning_rates_where_the_per_data_preset_sets_the_optimizers(make_cfg):
    """The default digits run (dcgan's preset sets both learning rates) was advised optimizer=ttur, which the preset
    then wrote over (its warning said to add presets=none, which drops the preset's every value: a review): the remedy
    names TTUR's rates as command-line values, and what it names trains with them and the preset's other values."""
    import shlex
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from gan.callbacks.gan_health import remedy
    from gan.utils.config import running_preset_setting

    make_cfg(["model=dcgan", "data=toy2d_grid"])  # a job's Hydra config, as train.py's
    assert running_preset_setting("optimizer") == "tuned/dcgan/toy2d_grid" and running_preset_setting("loss") is None
    plain = SimpleNamespace(schedules={}, penalties={})
    collapse = remedy("mode_collapse", plain, running_preset_setting("optimizer"))
    advice = "or use TTUR's learning rates (optimizer.generator.lr=0.0001 optimizer.discriminator.lr=0.0004; the " \
             "per-data preset tuned/dcgan/toy2d_grid sets its values over optimizer=ttur), a Wasserstein loss"
    assert advice in collapse
    overrides = shlex.split(advice.split("(")[1].split(";")[0])
    preset = make_cfg(["model=dcgan", "data=toy2d_grid"])
    followed = make_cfg(["model=dcgan", "data=toy2d_grid", *overrides])
    assert (followed.optimizer.generator.lr, followed.optimizer.discriminator.lr) == (1e-4, 4e-4)
    for key in ("generator_steps", "data.batch_size", "model.ema_decay", "model.generator.latent_dim"):  # the preset's
        assert OmegaConf.select(followed, key) == OmegaConf.select(preset, key), key
    assert make_cfg(["model=dcgan", "data=toy2d_grid", "optimizer=ttur"]).optimizer.discriminator.lr != 4e-4  # the preset's
    for no_preset in (["model=dcgan", "data=digits", "presets=none"], ["model=wgan_gp", "data=digits"]):
        make_cfg(no_preset)  # no preset, in both ways
        assert running_preset_setting("optimizer") is None
    assert "use TTUR (optimizer=ttur), " in remedy("mode_collapse", plain, None)


def test_remedies_fit_the_run_s_loss_and_critic_steps():
    """An audit: a minimax run whose D won was not told of loss=non_saturating, a run with one D step per G step was
    told to take fewer, and TTUR (which gives D the larger learning rate) was advised to weaken D."""
    from types import SimpleNamespace

    from gan.callbacks.gan_health import REMEDIES, remedy
    from gan.losses import MinimaxLoss, NonSaturatingLoss, WassersteinLoss

    def run(loss, n_critic=1):
        return SimpleNamespace(schedules={}, penalties={}, loss=loss, n_critic=n_critic)

    minimax = remedy("discriminator_overpowers", run(MinimaxLoss()))
    assert minimax.startswith("the minimax generator loss gives G no gradient while D wins: use loss=non_saturating; and "
                              "weaken D or help G: lower D's learning rate (optimizer.discriminator.lr), one-sided")
    assert "n_critic" not in minimax and "ttur" not in minimax
    assert remedy("discriminator_overpowers", run(NonSaturatingLoss(), n_critic=5)) == REMEDIES["discriminator_overpowers"]
    assert "non_saturating" not in remedy("discriminator_overpowers", run(NonSaturatingLoss()))
    assert remedy("vanishing_generator_gradients", run(MinimaxLoss())).startswith("use the non-saturating generator loss")
    assert remedy("vanishing_generator_gradients", run(NonSaturatingLoss())).startswith("weaken D: lower its learning rate")
    assert "fewer D steps (model.n_critic)" in remedy("mode_collapse", run(WassersteinLoss(), n_critic=5))
    assert "n_critic" not in remedy("mode_collapse", run(NonSaturatingLoss()))
    assert all("ttur" not in REMEDIES[kind] for kind in ("discriminator_overpowers", "vanishing_generator_gradients"))


def test_remedies_leave_out_what_the_run_already_has(make_cfg):
    """An audit: a WGAN-GP run's mode collapse was advised model=wgan_gp, an SN-GAN run's spectral norm, a run with
    minibatch stddev minibatch stddev, and a Wasserstein run's vanishing gradients label smoothing, which its loss
    refuses. Read from the built module, so a preset's or an override's trick counts alike; the list stays a list."""
    import itertools
    import re

    from gan.callbacks.gan_health import REMEDIES, TRICK_PHRASES, remedy, tricks_left_out, without_option
    from gan.utils.instantiate import build_module

    def module(model, *extra):
        return build_module(make_cfg([*tiny_overrides(model, "toy2d_grid"), *extra]))

    wgan_gp, sngan, dcgan = module("wgan_gp"), module("sngan"), module("dcgan")
    assert tricks_left_out(wgan_gp) == {"wgan_gp", "label_smoothing"}  # its loss takes no targets
    assert tricks_left_out(sngan) == {"spectral_norm", "hinge", "label_smoothing"}
    assert tricks_left_out(dcgan) == set()
    dcgan.discriminator.head = torch.nn.utils.spectral_norm(torch.nn.Linear(2, 1))  # torch's older, hook-based form
    assert tricks_left_out(dcgan) == {"spectral_norm"}
    dcgan = module("dcgan")
    wgan = module("wgan")
    assert tricks_left_out(wgan) == {"label_smoothing"}  # clipping, no penalty: WGAN-GP is still advice
    assert "weight clipping: model.weight_clip=0.01" in remedy("divergence", dcgan)
    assert "a tighter weight clip than its 0.01: model.weight_clip)" in remedy("divergence", wgan)
    assert tricks_left_out(module("dcgan", "model.discriminator.minibatch=stddev", "model.real_label=0.9",
                                  "model.instance_noise_std=0.1")) == {"minibatch", "label_smoothing", "instance_noise"}
    assert remedy("mode_collapse", dcgan) == REMEDIES["mode_collapse"].replace(", fewer D steps (model.n_critic)", "")  # 1 D step
    collapse = remedy("mode_collapse", wgan_gp)
    assert "model=wgan_gp" not in collapse and "spectral_norm=true" in collapse and "n_critic" in collapse
    collapse = remedy("mode_collapse", sngan)
    assert "spectral" not in collapse and "model=wgan_gp" in collapse
    assert "label smoothing" not in remedy("vanishing_generator_gradients", wgan_gp)
    assert "label smoothing (model.real_label=0.9)" in remedy("vanishing_generator_gradients", dcgan)
    assert "spectral norm" not in remedy("divergence", sngan) and "weight clipping" in remedy("divergence", sngan)
    overpowers = remedy("discriminator_overpowers", module("dcgan", "model.discriminator.spectral_norm=true"))
    assert overpowers.endswith("instance noise (model.instance_noise_std=0.1), or a loss that keeps gradients "
                               "(loss=hinge, or model=wgan_gp)")

    # every subset of tricks leaves a well-formed list: no empty items, one "or" before the last of an or-list
    phrases = sorted({phrase for group in TRICK_PHRASES.values() for phrase in group})
    for kind, text in REMEDIES.items():
        held = [phrase for phrase in phrases if phrase in text  # whole items: not the tail of a longer held one
                and not any(phrase != other and phrase in other and other in text for other in phrases)]
        for count in range(len(held) + 1):
            for dropped in itertools.combinations(held, count):
                result = text
                for phrase in dropped:
                    result = without_option(result, phrase)
                assert all(phrase not in result for phrase in dropped), (kind, dropped)
                assert all(phrase in result for phrase in held if phrase not in dropped and
                           not any(phrase in other for other in dropped)), (kind, dropped)
                assert not re.search(r", ,|, or ,|, or or |;\s*;|:\s*[,;)]|,\s*\)|\(\s*[,;]", result), (kind, dropped, result)
    assert without_option("a, b, or c", "c") == "a, or b" and without_option("a, b, or c", "b") == "a, or c"
    assert without_option("a, b, or c", "a") == "b, or c" and without_option("a, b", "z") == "a, b"
    assert without_option("one-sided label smoothing (x), c", "label smoothing (x)") == "one-sided label smoothing (x), c"


# ------------------------------------------------------------------------------------------ ignored labels
class ConcatLabel(torch.nn.Module):
    """A conditional generator whose sample is its code followed by ``scale`` x the one-hot label."""

    def __init__(self, classes: int, scale: float):
        super().__init__()
        self.classes, self.scale = classes, scale

    def forward(self, z, labels):
        return torch.cat([z, self.scale * torch.nn.functional.one_hot(labels, self.classes).float()], dim=1)


def conditional_stub(generator, codes=64, classes=10):
    """The module's sample_fixed, the real method, over a stub holding its fixed codes and generator."""
    from types import SimpleNamespace

    from gan.module import GANModule

    stub = SimpleNamespace(fixed_noise=torch.randn(codes, 3, generator=torch.Generator().manual_seed(0)),
                           num_classes=classes, sampling_generator=generator)
    stub.sample_fixed = lambda n=None, labels=None: GANModule.sample_fixed(stub, n, labels)
    return stub


@pytest.mark.parametrize("classes,scale", [(10, 1.0), (2, 0.3), (1000, 2.0)])
def test_label_effect_is_the_relabelled_over_the_recoded_distance(classes, scale):
    """Code j with labels y and y + 1 differs by scale x sqrt(2) (two one-hot entries); code j + 1 with label y + 1
    against code j with it differs by |z_j - z_(j+1)| (the label part is equal): the ratio of their means. 1,000
    classes against 64 codes (Stacked MNIST's count) need no two codes of one class."""
    from gan.callbacks.gan_health import label_effect

    stub = conditional_stub(ConcatLabel(classes, scale), classes=classes)
    z = stub.fixed_noise[:50]
    expected = scale * math.sqrt(2) / (z[1:] - z[:-1]).norm(dim=1).mean().item()
    assert label_effect(stub, 50) == pytest.approx(expected, rel=1e-5)
    # the mode-collapse check's draw, passed in, is the first draw (sample_fixed's labels cycle as label_effect's)
    assert label_effect(stub, 50, first=stub.sample_fixed(50)) == label_effect(stub, 50)
    ignoring = conditional_stub(ConcatLabel(classes, 0.0), classes=classes)
    assert label_effect(ignoring, 50) == 0.0
    constant = conditional_stub(ConcatLabel(classes, 0.0), classes=classes)
    constant.fixed_noise.zero_()  # every code alike too: nothing to compare with (mode collapse's case), no verdict
    assert math.isnan(label_effect(constant, 50))
    assert math.isnan(label_effect(conditional_stub(ConcatLabel(1, 1.0), classes=1), 50))  # one class: no other label


def test_ignored_labels_rule():
    from gan.callbacks.gan_health import IgnoredLabels

    detector = IgnoredLabels(start_generator_step=100, min_label_effect=0.1)
    assert not detector.due(99) and detector.due(100)
    assert detector.check(0.0999) == {"label_effect": 0.0999, "min_label_effect": 0.1}
    assert detector.check(0.1) is None and detector.check(math.nan) is None


@pytest.mark.slow
def test_a_generator_that_ignores_its_labels_is_reported_and_one_that_reads_them_is_not(make_cfg, tmp_path, monkeypatch):
    """cgan on the digits (its preset embeds the label in z): the shipped generator's samples move with their labels
    from step 0 (the embedding starts random) and nothing fires; the same generator fed one label whatever it is given
    (a network of one's own that never reads its labels) fires at the first check with an effect of exactly 0, is
    told to check its own network and not to embed a label it embeds already."""
    checks = ["callbacks.gan_health.mode_collapse.start_generator_step=10", "callbacks.gan_health.mode_collapse.every_n_generator_steps=10",
              "callbacks.gan_health.ignored_labels.start_generator_step=10"]
    train(make_cfg(health_overrides("cgan", "digits", 20, *checks)))
    run = tmp_path / "run"
    effects = logged(run, "health/label_effect")
    assert [step for step, _ in effects] == [10.0, 20.0] and all(effect > 0.1 for _, effect in effects)
    assert "ignored_labels" not in {e["kind"] for e in events_of(run)}

    original = DCGANGenerator.forward
    monkeypatch.setattr(DCGANGenerator, "forward", lambda self, z, labels=None: original(self, z, torch.zeros_like(labels)))
    ignoring = tmp_path / "ignoring"
    train(make_cfg(health_overrides("cgan", "digits", 20, *checks), output_dir=ignoring))
    events = [e for e in events_of(ignoring) if e["kind"] == "ignored_labels"]
    assert [(e["generator_step"], e["evidence"]) for e in events] == [(10, {"label_effect": 0.0, "min_label_effect": 0.1})]
    assert events[0]["remedy"].startswith("make sure a network of your own reads its labels argument")
    assert logged(ignoring, "health/label_effect") == [(10.0, 0.0), (20.0, 0.0)]


def test_the_ignored_labels_remedy_drops_the_embedding_a_generator_has():
    from types import SimpleNamespace

    from gan.callbacks.gan_health import REMEDIES, remedy

    def run(conditioning):
        return SimpleNamespace(schedules={}, penalties={}, generator=SimpleNamespace(conditioning=conditioning))

    assert remedy("ignored_labels", run("batchnorm")) == REMEDIES["ignored_labels"]
    assert remedy("ignored_labels", run("embedding")) == REMEDIES["ignored_labels"].split("), ", 1)[1]
