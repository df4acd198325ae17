"""GANHealth under DDP (2 CPU processes, gloo, through ``python train.py trainer=ddp_cpu``): the values are
averaged over the ranks before the detectors read them, so a failure seen on one rank is detected, reported
and acted on by every rank, rank 0 included (which alone writes events)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch.distributed as dist

from gan.losses.adversarial import NonSaturatingLoss
from gan.utils.checkpoint import load_checkpoint
from gan.utils.config import PROJECT_ROOT
from tests.conftest import tiny_overrides

NAN_FROM_D_STEP = 3


class NaNScoreOnRankOne(NonSaturatingLoss):
    """Logs non-finite D(x) / D(G(z)) on rank 1 from its third D step; training itself is unaffected (the
    scores are logged terms only, so the ranks keep equal weights and rank 0's own values stay finite)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def score(self, logits):
        self.calls += 1
        value = super().score(logits)
        on_rank_one = dist.is_initialized() and dist.get_rank() == 1
        return value * float("nan") if on_rank_one and self.calls > 2 * (NAN_FROM_D_STEP - 1) else value


def train_on_two_processes(tmp_path, loss: str, checkpoint_every_n_train_steps: int):
    """``python train.py trainer=ddp_cpu`` on the tiny ring GAN with ``loss`` (a class of this module), which
    must diverge: (the completed process, the one event health.jsonl holds)."""
    run_dir = tmp_path / "run"
    command = [sys.executable, "train.py", "trainer=ddp_cpu",
               *[o for o in tiny_overrides("gan", "toy2d_ring", steps=20) if o != "trainer.accelerator=cpu"],
               "metrics=none", "callbacks.sample_grid=null",
               f"callbacks.model_checkpoint.every_n_train_steps={checkpoint_every_n_train_steps}",
               f"loss._target_=tests.callbacks.test_gan_health_ddp.{loss}",
               f"hydra.run.dir={run_dir}", f"paths.data_dir={tmp_path / 'data'}"]
    # a timeout, not a hang, if the ranks ever disagree on when to check
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 3, result.stderr[-3000:]  # rank 0 exits as a diverged run
    (event,) = [json.loads(line) for line in (run_dir / "health.jsonl").read_text().splitlines()]
    return result, event


@pytest.mark.slow
def test_a_failure_on_rank_one_is_detected_and_reported_by_rank_zero(tmp_path):
    result, event = train_on_two_processes(tmp_path, "NaNScoreOnRankOne", checkpoint_every_n_train_steps=2)
    run_dir = tmp_path / "run"
    assert (event["kind"], event["generator_step"]) == ("divergence", NAN_FROM_D_STEP)
    assert set(event["evidence"]) == {"train/d/real_score", "train/d/fake_score"}
    assert "error: training diverged: divergence at generator step 3" in result.stderr
    # both ranks stopped at that iteration (a rank that went on would hang in the next collective)
    assert load_checkpoint(run_dir / "checkpoints" / "last_healthy.ckpt")["gan_counters"]["generator_steps"] == NAN_FROM_D_STEP - 1


class NaNGeneratorLossOnRankOne(NonSaturatingLoss):
    """Rank 1's generator loss turns NaN at its third G step, for real: its NaN gradients reach both ranks'
    weights through DDP's averaging, so rank 0's losses turn an iteration after rank 1's."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def generator_loss(self, fake_logits, real_logits=None):
        self.calls += 1
        terms = super().generator_loss(fake_logits, real_logits)
        if dist.is_initialized() and dist.get_rank() == 1 and self.calls >= NAN_FROM_D_STEP:
            terms["loss"] = terms["loss"] * float("nan")
        return terms


@pytest.mark.slow
def test_a_loss_turning_on_one_rank_first_is_checked_by_every_rank_together(tmp_path):
    """On CPU one process reads G's loss every iteration to stop a NaN run at once; under DDP the ranks must
    check at the same iterations (the check reduces over them), so a rank whose loss turns first may not check
    alone: it would wait in that reduce while the other trains on (a hang). They check every
    sync_every_n_iterations (10), together, and report step 3."""
    result, event = train_on_two_processes(tmp_path, "NaNGeneratorLossOnRankOne", checkpoint_every_n_train_steps=1000)
    assert (event["kind"], event["generator_step"]) == ("divergence", NAN_FROM_D_STEP)
    assert "train/g/loss" in event["evidence"]
    assert "error: training diverged: divergence at generator step 3" in result.stderr
