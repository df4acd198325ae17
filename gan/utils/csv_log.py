"""A resumed run's CSV log: the rows its run wrote before the checkpoint, then its own."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Iterable

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from gan.utils.distributed import is_rank_zero
from gan.utils.files import atomic_write
from gan.utils.logging import GENERATOR_STEP


def continue_csv_logs(loggers: Iterable, generator_steps: int) -> None:
    """A resumed run continues the ``metrics.csv`` of the run it resumes, when it logs into the same folder.

    Lightning's CSV logger deletes the file whenever its folder is not empty, so a resume lost every row logged
    before it (an audit: after two resumes the file held the last segment's rows only). The rows of the
    checkpoint's ``generator_steps`` and before are kept, those after dropped (a run that went on past its last
    checkpoint and died: the resumed run logs those steps again), so the file reads as the uninterrupted run's.
    By generator step, not by Lightning's logging position, which a checkpoint saved at a batch's end holds one
    short of where the resumed run logs next."""
    if not is_rank_zero():
        return
    for logger in loggers:
        if isinstance(logger, CSVLogger) and logger._experiment is None:  # not started yet (no public way to ask)
            Path(logger.root_dir).mkdir(parents=True, exist_ok=True)
            logger._experiment = ContinuedCSVWriter(logger.log_dir, generator_steps)


def flush_csv_logs(loggers: Iterable) -> None:
    """Write the rows Lightning's CSV loggers hold in memory (they write when a row's step + 1 is a
    multiple of ``flush_logs_every_n_steps``, 100): called when a
    checkpoint is saved, so that a run killed hard after it (SIGKILL, out of memory) has its rows up to the
    checkpoint on disk for the resumed run to continue (a review)."""
    for logger in loggers:
        if isinstance(logger, CSVLogger) and logger._experiment is not None:
            logger.save()


class ContinuedCSVWriter(ExperimentWriter):
    """Lightning's CSV writer, keeping the rows of ``metrics.csv`` up to generator step ``through`` (and their
    header, which new keys extend as Lightning's writer does) instead of deleting the file."""

    def __init__(self, log_dir: str, through: int):
        self.through = through
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        path = self.metrics_file_path
        if not self._fs.isfile(path):
            return
        # two passes over the file, a row at a time (a million-step run's log is ~10 MB; it was read whole into
        # memory, about 85 MB at its peak: a soak audit)
        with self._fs.open(path, "r", newline="") as handle:
            reader = csv.DictReader(handle)
            # a row without a generator step (another client of the logger) is kept up to the last position of those kept
            last = max((float(row["step"]) for row in reader if self._checkpointed(row) and _number(row.get("step"))),
                       default=-math.inf)
            header = sorted(reader.fieldnames or [])  # sorted, as Lightning's writer keeps its keys and appends rows
        # into a temporary file moved over this one (local, as the folder continue_csv_logs makes): rewritten in place,
        # a crash while writing lost the rows it had not yet written
        with atomic_write(path) as temporary, self._fs.open(path, "r", newline="") as source, \
                open(temporary, "w", newline="") as target:
            writer = csv.DictWriter(target, fieldnames=header)
            writer.writeheader()
            writer.writerows(row for row in csv.DictReader(source) if self._checkpointed(row) or (
                not row.get(GENERATOR_STEP) and _number(row.get("step")) and float(row["step"]) <= last))
        self.metrics_keys = header

    def _checkpointed(self, row: dict) -> bool:  # a row cut short by a crash has no number there: dropped
        return _number(row.get(GENERATOR_STEP)) and float(row[GENERATOR_STEP]) <= self.through


def _number(text: str | None) -> bool:
    try:
        float(text)
        return True
    except (TypeError, ValueError):
        return False
