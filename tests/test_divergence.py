"""A diverged run stops within an iteration, keeps only finite checkpoints and says where it went non-finite:
exit status 3 for a single run; a multirun records the job as ``diverged`` and goes on."""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import lightning.pytorch as pl
import pytest
import torch

from gan.utils.checkpoint import load_checkpoint
from gan.utils.config import PROJECT_ROOT
from tests.conftest import tiny_overrides

# SGD at a learning rate of 1e4 (the paper's is 0.1): non-finite from the second generator step
EXPLODING = ["optimizer.generator.lr=1e4", "optimizer.discriminator.lr=1e4"]
# presets=none: the paper's SGD, not the toys' per-data Adam (conf/preset/tuned/gan/toy2d_ring.yaml)
RUN = [*tiny_overrides("gan", "toy2d_ring", steps=500), "presets=none", "metrics=none", "callbacks.sample_grid=null",
       "callbacks.model_checkpoint.every_n_train_steps=2",  # a checkpoint every generator step
       # the samples' spread, checked before every save, finds the explosion at the first save (3.6e17 times the
       # data's); these runs test what follows non-finite terms, so that check is out of their way
       "callbacks.gan_health.divergence.max_diversity_ratio=1e30"]


def finite(checkpoint) -> bool:
    return all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("divergence")
    commands = {
        "single": [*RUN, *EXPLODING, f"hydra.run.dir={tmp / 'single'}"],
        # job 0 explodes, job 1 (the paper's 0.1) trains to the end
        "sweep": ["-m", *RUN, "optimizer.discriminator.lr=1e4,0.1", "generator_steps=20",
                  f"hydra.sweep.dir={tmp / 'sweep'}"],
        "ddp": [*RUN, *EXPLODING, "trainer=ddp_cpu", "trainer.devices=2", "metrics=[mode_coverage]", "metrics.every_n_generator_steps=1000",
                f"hydra.run.dir={tmp / 'ddp'}"],
    }

    def run(item):
        name, arguments = item
        command = [sys.executable, "train.py", *arguments, f"paths.data_dir={tmp / 'data'}"]
        return name, subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                                    env={**os.environ, "OMP_NUM_THREADS": "1"})

    with ThreadPoolExecutor(2) as pool:  # the DDP run's two processes take the machine's two cores after the others
        return dict(pool.map(run, commands.items())) | {"tmp": tmp}


@pytest.mark.slow
def test_diverged_run_stops_keeps_finite_checkpoints_and_names_the_step(runs):
    result, run_dir = runs["single"], runs["tmp"] / "single"
    assert result.returncode == 3, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    match = re.fullmatch(r"error: training diverged: divergence at generator step (\d+) \((.*)\); last healthy checkpoint: (.*)", line)
    assert match, line
    step, evidence, healthy = int(match[1]), match[2], match[3]
    assert step <= 5 and re.match(r"(train|grad)/[a-z/_]+=(nan|-?inf)", evidence), evidence  # names the term
    checkpoints = sorted((run_dir / "checkpoints").glob("*.ckpt"))
    assert [p.name for p in checkpoints if p.name.startswith("last")] == ["last.ckpt", "last_healthy.ckpt"]
    for path in checkpoints:  # gstep_*.ckpt, last.ckpt and last_healthy.ckpt: only finite weights were ever written
        assert finite(load_checkpoint(path)), path
    kept = load_checkpoint(healthy)
    assert kept["gan_counters"]["generator_steps"] < step
    # stopped at the iteration that failed, not 500 generator steps of NaN arithmetic later
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["gan_counters"]["generator_steps"] < step


@pytest.mark.slow
def test_multirun_records_the_diverged_job_and_goes_on(runs):
    result, sweep_dir = runs["sweep"], runs["tmp"] / "sweep"
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(open(sweep_dir / "summary.csv")))
    assert [row["status"] for row in rows] == ["diverged", "completed"]
    assert rows[0]["error"].startswith("training diverged: divergence at generator step")
    assert re.search(r"^error: training diverged: divergence at generator step \d+ ", result.stderr, re.M)
    assert load_checkpoint(sweep_dir / "1" / "checkpoints" / "last.ckpt")["gan_counters"]["generator_steps"] == 20


@pytest.mark.slow
def test_a_diverged_ddp_run_says_so_once_and_points_at_its_last_healthy_checkpoint(runs):
    """Both processes stop (status 3); the error line and the run directory came once per process, and the hint to
    score the final generator pointed at last.ckpt, the weights that diverged (an audit)."""
    result = runs["ddp"]
    assert result.returncode == 3, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: training diverged: divergence at generator step"), errors
    healthy = errors[0].rsplit("; last healthy checkpoint: ", 1)[1]
    output = result.stdout + result.stderr
    assert output.count("Run directory: ") <= 1  # rank 0's line (it is not printed when the run stops with an error)
    assert output.count("Seed set to") == 1  # info and warning lines from rank 0 alone (one per process before)
    assert f"the run diverged: score its last healthy checkpoint with: python evaluate.py ckpt_path={healthy}" in output
    assert "score it with: python evaluate.py" not in output


@pytest.mark.slow
def test_no_checkpoint_is_saved_after_a_divergence_whose_weights_stay_finite(make_cfg, tmp_path):
    """WGAN-GP at lr 5: the critic's score gap runs away with finite weights, which last.ckpt and gstep_*.ckpt then
    held, so ckpt_path=last resumed the diverged run (an audit)."""
    from train import train

    cfg = make_cfg(["model=wgan_gp", "data=toy2d_ring", "generator_steps=40", "logger=none", "metrics=none",
                    "callbacks.sample_grid=null", "callbacks.progress_bar=null", "optimizer.generator.lr=5",
                    "optimizer.discriminator.lr=5", "model.schedules.lr=null",  # the toy preset's schedule would set 1e-4
                    "callbacks.model_checkpoint.every_n_train_steps=12",
                    "callbacks.gan_health.sync_every_n_iterations=1", "model.iterations_per_batch=1",
                    "callbacks.gan_health.divergence.max_diversity_ratio=1e30"])  # the score gap's route, not the spread's
    _, objects = train(cfg)
    event = objects["stopped_by"]
    assert event["kind"] == "divergence" and "max_score_gap" in event["evidence"], event
    checkpoints = tmp_path / "run" / "checkpoints"
    for path in checkpoints.glob("*.ckpt"):  # every file holds a state from before the detection
        assert load_checkpoint(path)["gan_counters"]["generator_steps"] < event["generator_step"], path.name
    assert torch.equal(load_checkpoint(checkpoints / "last.ckpt")["state_dict"]["generator.net.0.weight"],
                       load_checkpoint(checkpoints / "last_healthy.ckpt")["state_dict"]["generator.net.0.weight"])


def test_weights_that_turn_non_finite_while_the_losses_stay_finite_are_divergence(make_cfg, tmp_path):
    """WGAN at lr 1e12: a batch-norm running variance overflowed while training (on batch statistics) stayed finite;
    the run ended "no problems detected", status 0, no checkpoint (an audit). Now a divergence, found at the end."""
    from train import train

    _, objects = train(make_cfg(tiny_overrides("wgan", steps=4) + ["optimizer.generator.lr=1e12", "metrics=none"]))
    event = objects["stopped_by"]
    assert event["kind"] == "divergence" and event["evidence"]["non_finite_tensor"].startswith("generator."), event
    assert event["last_healthy_checkpoint"] is None  # none had been saved
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


class InflateGenerator(pl.Callback):
    """Redraws the generator's output layer with weights of std ``std`` at the end of generator step ``at``
    (before that step's checkpoint save: Lightning runs checkpoint callbacks last): a generator whose output ran
    away, its hidden features mapped hundreds of times wider than the data."""

    def __init__(self, at: int, std: float = 1000.0):
        self.at, self.std = at, std

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        if pl_module.generator_steps == self.at:
            last = [m for m in pl_module.generator.modules() if isinstance(m, torch.nn.Linear)][-1]
            with torch.no_grad():
                last.weight.normal_(0.0, self.std, generator=torch.Generator().manual_seed(0))


def test_samples_spread_far_wider_than_the_data_are_checked_before_every_checkpoint_save(make_cfg, tmp_path):
    """The spread was checked only at the mode-collapse cadence (every 100 generator steps), so a checkpoint saved
    between two checks was kept as "last healthy" with samples 67-218 times wider than the data (an audit: DCGAN on
    the grid at lr 1). Now it is checked before each save too: the inflated state is found at its save, not saved,
    and the kept file is the save before it."""
    from gan.callbacks.gan_health import mean_pairwise_distance
    from gan.data import Toy2DDataModule
    from gan.utils.checkpoint import load_generator
    from train import train

    cfg = make_cfg(["model=dcgan", "data=toy2d_grid", "generator_steps=60", "logger=none", "metrics=none",
                    "model.ema_decay=null",  # the samples checked are the EMA's, which would take the change in slowly
                    "callbacks.sample_grid=null", "callbacks.progress_bar=null", "model.iterations_per_batch=1",
                    "callbacks.model_checkpoint.every_n_train_steps=10", "callbacks.model_checkpoint.save_top_k=-1",
                    f"+callbacks.inflate._target_={__name__}.InflateGenerator", "+callbacks.inflate.at=15"])
    _, objects = train(cfg)
    event = objects["stopped_by"]
    assert event["kind"] == "divergence" and event["generator_step"] == 15, event
    assert event["evidence"]["diversity_ratio"] > 10
    # and training stops there, not after one more batch (an audit: up to 10 more iterations with the default batching)
    assert objects["module"].generator_steps == 15
    checkpoints = tmp_path / "run" / "checkpoints"
    assert sorted(path.name for path in checkpoints.glob("*.ckpt")) == [  # an interval of 10 optimizer steps: 5 generator steps
        "gstep_0000005.ckpt", "gstep_0000010.ckpt", "last.ckpt", "last_healthy.ckpt"]  # not gstep_0000015, which diverged
    assert load_checkpoint(checkpoints / "last_healthy.ckpt")["gan_counters"]["generator_steps"] == 10
    real = Toy2DDataModule(layout="grid")
    real.setup("fit")
    draw = real.real_samples(256, generator=torch.Generator().manual_seed(0))
    for path in checkpoints.glob("*.ckpt"):
        noise = load_checkpoint(path)["state_dict"]["fixed_noise"][:256]
        with torch.no_grad():
            spread = mean_pairwise_distance(load_generator(path).eval()(noise)) / mean_pairwise_distance(draw)
        assert spread <= 10, (path.name, spread)
