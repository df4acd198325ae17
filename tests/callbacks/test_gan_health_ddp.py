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


@pytest.mark.slow
def test_a_failure_on_rank_one_is_detected_and_reported_by_rank_zero(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "train.py", "trainer=ddp_cpu",
               *[o for o in tiny_overrides("gan", "toy2d_ring", steps=20) if o != "trainer.accelerator=cpu"],
               "metrics=none", "callbacks.sample_grid=null", "callbacks.model_checkpoint.every_n_train_steps=2",
               "loss._target_=tests.callbacks.test_gan_health_ddp.NaNScoreOnRankOne",
               f"hydra.run.dir={run_dir}", f"paths.data_dir={tmp_path / 'data'}"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 3, result.stderr[-3000:]  # rank 0 exits as a diverged run
    (event,) = [json.loads(line) for line in (run_dir / "health.jsonl").read_text().splitlines()]
    assert (event["kind"], event["generator_step"]) == ("divergence", NAN_FROM_D_STEP)
    assert set(event["evidence"]) == {"train/d/real_score", "train/d/fake_score"}
    assert "error: training diverged: divergence at generator step 3" in result.stderr
    # both ranks stopped at that iteration (a rank that went on would hang in the next collective)
    assert load_checkpoint(run_dir / "checkpoints" / "last_healthy.ckpt")["gan_counters"]["generator_steps"] == NAN_FROM_D_STEP - 1
