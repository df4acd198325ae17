"""A callback for sweep tests that need one job to fail while another is surely running."""
from __future__ import annotations

import csv
import time
from pathlib import Path

import lightning.pytorch as pl

from gan.utils.errors import ConfigError


class FailWhenAnotherJobRuns(pl.Callback):
    """With ``fail=true``, raises a user error at the start of training once job ``job`` of the sweep has its
    ``running`` row in ``summary`` (the sweep's summary.csv), or after ``timeout`` seconds. A job that failed at
    once could fail before the other had started on a loaded machine, so a test of "a job cut off by another's
    error has a running row" found no row to check."""

    def __init__(self, summary: str, fail: bool = False, job: int = 0, timeout: float = 120.0):
        self.summary, self.fail, self.job, self.timeout = Path(summary), fail, str(job), timeout

    def on_train_start(self, trainer, pl_module) -> None:
        if not self.fail:
            return
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and not self._running():
            time.sleep(0.1)
        raise ConfigError(f"a deliberate failure, job {self.job} {'running' if self._running() else 'not seen running'}")

    def _running(self) -> bool:
        try:
            with open(self.summary, newline="") as file:
                return any(row.get("job") == self.job and row.get("status") == "running" for row in csv.DictReader(file))
        except OSError:
            return False
