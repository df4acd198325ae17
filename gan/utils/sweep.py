"""Hydra multirun support: the value a sweeper optimizes, and a summary table of every job of a sweep.

Each job writes ``<job dir>/result.json``; each job then rewrites ``<sweep dir>/summary.csv`` from all the
results present, under a file lock, so the table is complete once the last job ends whatever the launcher
(basic, joblib, submitit) and whatever the order jobs finish in.
"""
from __future__ import annotations

import csv
import fcntl
import json
import logging
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from gan.utils.errors import ConfigError, print_error
from gan.utils.files import atomic_write

log = logging.getLogger("gan")

RESULT_FILE = "result.json"
SUMMARY_FILE = "summary.csv"


def objective(metrics: Mapping[str, float], name: str | None, failed_value: float | None = None) -> float | None:
    """The value of ``name`` in the run's final metrics; ``failed_value`` (when set) for a diverged run.

    A name that was never logged is a configuration error: without ``failed_value`` it raises, listing the
    names that were logged; in a sweep with ``failed_value`` it is logged and the trial is penalised.
    """
    if not name:
        return None
    value = metrics.get(name)
    if value is None:
        message = f"optimized_metric {name!r} was not logged; logged metrics: {sorted(metrics)}"
        if failed_value is None:
            raise ConfigError(message)
        log.error("%s; returning failed_trial_value=%s", message, failed_value)
        return float(failed_value)
    if not math.isfinite(value) and failed_value is not None:
        log.warning("%s is %s (diverged run): returning failed_trial_value=%s", name, value, failed_value)
        return float(failed_value)
    return float(value)


def write_result(job_dir: str | Path, result: Mapping[str, Any]) -> Path:
    path = Path(job_dir) / RESULT_FILE
    with atomic_write(path) as temporary:
        temporary.write_text(json.dumps(result, indent=2, sort_keys=True, default=str))
    return path


@contextmanager
def locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def summary_rows(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per job result under ``sweep_dir``: job number, status, objective, overrides, final metrics."""
    rows = []
    for path in sorted(Path(sweep_dir).glob(f"*/{RESULT_FILE}")):
        result = json.loads(path.read_text())
        row = {"job": result.get("job"), "status": result.get("status"), "objective": result.get("objective"),
               "seconds": result.get("seconds"), "output_dir": str(path.parent)}
        row.update(result.get("overrides", {}))
        row.update(result.get("metrics", {}))
        if result.get("error"):
            row["error"] = result["error"]
        rows.append(row)
    return sorted(rows, key=lambda row: (row["job"] is None, row["job"]))


def write_summary(sweep_dir: str | Path) -> Path:
    """Rewrite ``<sweep_dir>/summary.csv`` from every job result present (atomic, under a lock)."""
    sweep_dir = Path(sweep_dir)
    path = sweep_dir / SUMMARY_FILE
    with locked(sweep_dir / ".summary.lock"):
        rows = summary_rows(sweep_dir)
        columns = list(dict.fromkeys(key for row in rows for key in row))
        with atomic_write(path) as temporary, open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    return path


def sqlite_storage(path: str) -> str:
    """An SQLAlchemy URL for a sqlite file, its folder created (sqlite will not create it)."""
    path = Path(path).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


if not OmegaConf.has_resolver("sqlite_storage"):  # used by conf/hparams_search before any job runs
    OmegaConf.register_new_resolver("sqlite_storage", sqlite_storage)


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """``["model=gan", "optimizer.generator.lr=0.001"]`` -> ``{"model": "gan", ...}`` (Hydra's task overrides)."""
    return dict(override.split("=", 1) for override in overrides if "=" in override)


OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
DIRECTIONS = ("minimize", "maximize")


def check_sweeper_options(sweeper: Mapping[str, Any]) -> None:
    """The Optuna sweeper's ``direction`` and ``storage``, which Optuna and SQLAlchemy refuse only when the study is
    created, with a traceback (``hydra.sweeper.direction=sideways``, ``hydra.sweeper.storage=notadb``)."""
    if sweeper.get("_target_") != OPTUNA_SWEEPER:
        return
    direction = sweeper.get("direction")
    directions = list(direction) if OmegaConf.is_list(direction) or isinstance(direction, list) else [direction]
    if not directions or any(str(d).lower() not in DIRECTIONS for d in directions):
        raise ConfigError(f"hydra.sweeper.direction={direction}: expected minimize or maximize (or a list of them, "
                          "one per objective)")
    storage = sweeper.get("storage")
    if storage is not None:
        from sqlalchemy.engine import make_url

        try:
            make_url(str(storage))
        except Exception as error:  # sqlalchemy.exc.ArgumentError
            raise ConfigError(f"hydra.sweeper.storage={storage}: not a database URL ({error}); expected e.g. "
                              "sqlite:///path/to/study.db, or null for a study in memory") from None


class SweepOptionsCheck(Callback):  # Hydra calls every hook of every callback: the base class's do nothing
    """A Hydra callback (``hydra.callbacks`` in conf/hydra/default.yaml): the sweeper's options are checked when a
    multirun starts, before the sweeper builds its study."""

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        try:
            check_sweeper_options(config.hydra.sweeper)
        except ConfigError as error:
            # Hydra turns an exception of a callback into a warning and goes on: the multirun stops here instead
            print_error(error)
            raise SystemExit(error.exit_status) from None
