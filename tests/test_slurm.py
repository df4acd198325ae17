"""Plain-sbatch SLURM requeue, simulated: two processes with the same job id and command line; SIGUSR1 (the
time-limit warning) to the first makes it save at a batch boundary and requeue the job; the second resumes
from that checkpoint in the same run directory."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import lightning.pytorch as pl
import pytest

from gan.utils.checkpoint import load_checkpoint
from gan.utils.config import PROJECT_ROOT, run_dir_name
from tests.conftest import tiny_overrides

STEPS = 300


class RecordFirstStep(pl.Callback):
    """Appends the generator step each start of training begins at (a resumed start: the restored one)."""

    def __init__(self, path: str):
        self.path = path

    def on_train_start(self, trainer, pl_module):
        with open(self.path, "a") as handle:
            handle.write(f"{pl_module.generator_steps}\n")


class HoldUntilSignalled(pl.Callback):
    """From the generator step in ``$HOLD_FROM`` on (unset: never), ends no training batch before the run has received
    a signal (up to ``longest`` seconds): the test signals once the first interval checkpoint exists, and a loaded
    machine could let the run finish every step before the signal came (a flakiness audit). An environment variable,
    not an option: the requeued job must have the first one's options (its run folder is named by them). The signal
    handler runs in this thread, during the sleep."""

    def __init__(self, longest: float = 120.0):
        self.hold_from = int(os.environ.get("HOLD_FROM", 0)) or None
        self.longest = longest

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.hold_from is None or pl_module.generator_steps < self.hold_from:
            return
        deadline = time.monotonic() + self.longest
        while time.monotonic() < deadline and not any(getattr(c, "received_signal", None) for c in trainer.callbacks):
            time.sleep(0.05)


def slurm_environment(tmp_path, job_id="4242"):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    scontrol = bin_dir / "scontrol"  # records the requeue instead of talking to a controller
    scontrol.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'scontrol.log'}\n")
    scontrol.chmod(0o755)
    return {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": job_id,
            "SLURM_JOB_NAME": "gan", "SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
            "SLURM_NODELIST": "localhost"}


def test_run_directory_is_named_after_the_slurm_job(monkeypatch):
    for variable in ("SLURM_JOB_ID", "SLURM_JOB_NAME"):
        monkeypatch.delenv(variable, raising=False)
    assert run_dir_name("2026-01-01_00-00-00", ["model=gan"]) == "2026-01-01_00-00-00"
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    name = run_dir_name("2026-01-01_00-00-00", ["model=gan"])
    assert name.startswith("slurm-4242-") and name == run_dir_name("2026-06-01_12-00-00", ["model=gan"])  # a requeue
    assert run_dir_name("2026-01-01_00-00-00", ["model=wgan_gp"]) != name  # another run of the same job script
    monkeypatch.setenv("SLURM_JOB_NAME", "interactive")  # salloc + python: not a batch job, as for Lightning
    assert run_dir_name("2026-01-01_00-00-00", ["model=gan"]) == "2026-01-01_00-00-00"


@pytest.mark.slow
def test_requeued_job_resumes_at_the_step_the_signal_stopped(tmp_path):
    env = slurm_environment(tmp_path)
    logs = tmp_path / "logs"
    command = [sys.executable, "train.py", *tiny_overrides("gan", "toy2d_ring", steps=STEPS), "metrics=none",
               "callbacks.sample_grid=null", f"paths.log_dir={logs}", f"paths.data_dir={tmp_path / 'data'}",
               "callbacks.model_checkpoint.every_n_train_steps=20",
               "+callbacks.first_step._target_=tests.test_slurm.RecordFirstStep",
               "+callbacks.first_step.path=${paths.output_dir}/first_steps.txt",
               "+callbacks.hold._target_=tests.test_slurm.HoldUntilSignalled"]
    with open(tmp_path / "first.log", "w") as log:
        # the first job waits for the signal after its first interval checkpoint (generator step 10); the requeued one not
        first = subprocess.Popen(command, cwd=PROJECT_ROOT, env={**env, "HOLD_FROM": "11"}, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 180
        while not list(logs.glob("train/runs/*/checkpoints/gstep_*.ckpt")) and time.time() < deadline and first.poll() is None:
            time.sleep(0.1)
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        first.send_signal(signal.SIGUSR1)
        first.wait(timeout=120)
    assert first.returncode == 128 + signal.SIGUSR1, (tmp_path / "first.log").read_text()[-3000:]
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]
    (run_dir,) = (logs / "train" / "runs").iterdir()
    assert run_dir.name.startswith("slurm-4242-")
    stopped_at = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    saved_step = stopped_at["gan_counters"]["generator_steps"]
    assert 0 < saved_step < STEPS and stopped_at["global_step"] == 2 * saved_step  # between iterations

    second = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert [p.name for p in (logs / "train" / "runs").iterdir()] == [run_dir.name]  # the same directory
    assert (run_dir / "first_steps.txt").read_text().split() == ["0", str(saved_step)]
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["gan_counters"]["generator_steps"] == STEPS
