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

from gan.utils.errors import ConfigError, stop_on_user_error
from gan.utils.files import atomic_write, folder_write_problem

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


def write_result(job_dir: str | Path, result: Mapping[str, Any]) -> Path | None:
    """``<job_dir>/result.json``; None, with a warning, when the folder cannot be written (a job refused for
    an unwritable ``paths.output_dir`` is then missing from summary.csv, but its own error line still stands)."""
    path = Path(job_dir) / RESULT_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as temporary:
            temporary.write_text(json.dumps(result, indent=2, sort_keys=True, default=str))
    except OSError as error:
        log.warning("cannot write %s (%s): this job has no row in summary.csv", path, error.strerror or error)
        return None
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
    """One row per job result under ``sweep_dir``: job number, status, objective, seconds, the framework code it ran
    (``gan.utils.provenance.code_label``: jobs of one sweep started at different times may run different code), its
    folder, overrides, final metrics."""
    rows = []
    for path in sorted(Path(sweep_dir).glob(f"*/{RESULT_FILE}")):
        result = json.loads(path.read_text())
        row = {"job": result.get("job"), "status": result.get("status"), "objective": result.get("objective"),
               "seconds": result.get("seconds"), "code": result.get("code"), "output_dir": str(path.parent)}
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
    check_sqlite_folder(path.parent, f"sqlite:///{path}")
    return f"sqlite:///{path}"


def check_sqlite_folder(folder: Path, storage: str) -> None:
    """Create ``folder`` and write a file in it: sqlite could not open the study's file otherwise
    (SQLAlchemy's ``OperationalError: unable to open database file`` traceback when the study is created)."""
    problem = folder_write_problem(folder)
    if problem is not None:
        raise ConfigError(f"hydra.sweeper.storage={storage}: cannot write the folder {folder} ({problem}); "
                          "expected a sqlite file in a folder this user can create and write")


def trials_in_study(storage: str | None, study_name: str | None) -> int:
    """How many trials the study ``study_name`` already holds in the sqlite file of ``storage`` (0 when there is
    no such file, study or table: read only, without Optuna, so it costs nothing when the config resolves)."""
    import sqlite3

    if not storage or not str(storage).startswith("sqlite:///"):
        return 0
    path = Path(str(storage)[len("sqlite:///"):])
    if not path.is_file():
        return 0
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = connection.execute("SELECT COUNT(*) FROM trials JOIN studies ON trials.study_id = studies.study_id "
                                     "WHERE studies.study_name = ?", (str(study_name),)).fetchone()
        finally:
            connection.close()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row else 0


def optuna_sampler_seed(seed: int, storage: str | None, study_name: str | None) -> int:
    """The sampler's seed: ``seed`` plus the number of trials the study already holds. A new study starts from
    ``seed`` (reproducible); adding trials to it (a new sweep with the same storage and study_name) draws new
    points instead of the first ones again, which a fixed seed re-drew (TPE's random startup trials)."""
    return int(seed) + trials_in_study(storage, study_name)


for _name, _resolver in (("sqlite_storage", sqlite_storage), ("optuna_sampler_seed", optuna_sampler_seed)):
    if not OmegaConf.has_resolver(_name):  # used by conf/hparams_search before any job runs
        OmegaConf.register_new_resolver(_name, _resolver)


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """``["model=gan", "optimizer.generator.lr=0.001"]`` -> ``{"model": "gan", ...}`` (Hydra's task overrides)."""
    return dict(override.split("=", 1) for override in overrides if "=" in override)


def fail_stopped_trial(sweeper: Mapping[str, Any], task_overrides: list[str]) -> int | None:
    """Tell the study that the trial of a job which stops an Optuna sweep failed; its number, or None.

    The sweeper tells the study each trial's outcome only after its batch of jobs returns; a job that stops the
    sweep (a user error without ``failed_trial_value``, an objective that is never logged) exits the
    process before that, which left the trial ``RUNNING`` in the stored study for good (Optuna's dashboard and
    ``study.trials`` showed it running forever). The trial is the running one whose searched values are the
    job's overrides (the sweeper writes each as ``name=value`` with ``str(value)``). Only for a study kept in a
    storage: an in-memory study ends with the process. Trials of the same batch whose jobs never started
    (``n_jobs`` > 1) have no job to match and stay ``RUNNING``."""
    storage = sweeper.get("storage")
    if not is_optuna(sweeper) or not storage:
        return None
    import optuna

    overrides = parse_overrides(task_overrides)
    study = optuna.load_study(study_name=sweeper.get("study_name"), storage=storage)
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in reversed(running):  # the newest first: a trial asked again for the same values ran later
        if trial.params and all(overrides.get(name) == str(value) for name, value in trial.params.items()):
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            return trial.number
    return None


OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
DIRECTIONS = ("minimize", "maximize")


def is_optuna(sweeper: Mapping[str, Any]) -> bool:
    return sweeper.get("_target_") == OPTUNA_SWEEPER


def check_sweeper_options(sweeper: Mapping[str, Any]) -> None:
    """The Optuna sweeper's ``direction``, ``storage``, ``n_trials`` and ``n_jobs``, which Optuna and SQLAlchemy
    refuse only when the study is created or asked, with a traceback (``hydra.sweeper.direction=sideways``,
    ``hydra.sweeper.storage=notadb``, a sqlite file in a folder that cannot be written, ``n_trials=0``)."""
    if not is_optuna(sweeper):
        return
    for key in ("n_trials", "n_jobs"):
        value = sweeper.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"hydra.sweeper.{key}={value}: expected an integer >= 1")
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
        url = make_url(str(storage))
        if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
            check_sqlite_folder(Path(url.database).expanduser().absolute().parent, str(storage))


def check_something_searched(sweeper: Mapping[str, Any], task_overrides: list[str]) -> None:
    """An Optuna sweep must search something: ``hparams_search=optuna_study`` alone (the shared study settings,
    with no ``hydra.sweeper.params``) ran n_trials identical trials and reported ``Best parameters: {}``."""
    if not is_optuna(sweeper):
        return
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = sweeper.get("params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()] + list(task_overrides)
    if any(override.is_sweep_override() for override in OverridesParser.create().parse_overrides(arguments)):
        return
    raise ConfigError("hydra.sweeper.params is empty and no override sweeps a value, so every trial would be the same "
                      "run; expected hparams_search=optuna, optuna_r3gan or optuna_toy, or a searched option such as "
                      "'model.n_critic=choice(1,2,5)'")


def check_failed_trial_value(value: Any, metric: str | None = None, direction: Any = None) -> None:
    """``failed_trial_value`` is a number (the sweeper casts it with float() once a trial has failed: a
    traceback then), and, for a known direction, not one that ranks a failed trial above real ones. Every
    metric the framework logs is >= 0 (FID, KID up to its estimator's noise, KL, modes, coverages, IS), so:
    when maximizing it must be <= 0, the worst a real run can score; when minimizing, > 0 (no finite value is
    above every FID, so a positive one is taken as meant: the default is 1e6)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"failed_trial_value={value}: expected a number (what a failed or diverged trial returns)")
    direction = str(direction).lower() if isinstance(direction, str) else None
    if direction == "maximize" and value > 0:
        raise ConfigError(f"failed_trial_value={value} would rank failed trials above real values of {metric} (direction "
                          "maximize, and the metrics are >= 0); expected a value <= 0, below any real one (e.g. -1)")
    if direction == "minimize" and value <= 0:
        raise ConfigError(f"failed_trial_value={value} would rank failed trials above real values of {metric} (direction "
                          "minimize, and the metrics are >= 0); expected a value above any real one (e.g. 1e6)")


def results_in(sweep_dir: str | Path) -> list[str]:
    """What an earlier sweep left in ``sweep_dir``: its summary.csv, job results and checkpoints."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        return []
    found = []
    if (sweep_dir / SUMMARY_FILE).exists():
        found.append(SUMMARY_FILE)
    results = list(sweep_dir.glob(f"*/{RESULT_FILE}"))
    if results:
        found.append(f"{len(results)} job result{'s' if len(results) > 1 else ''}")
    checkpoints = {path.parent.parent.name for path in sweep_dir.glob("*/checkpoints/*.ckpt")}
    if checkpoints:
        found.append(f"checkpoints of {len(checkpoints)} job{'s' if len(checkpoints) > 1 else ''}")
    return found


def check_sweep_dir_is_new(sweep_dir: str | Path, optuna: bool, resumes: bool = False) -> None:
    """A sweep does not start in a folder that holds another sweep's results: its jobs, numbered from 0 again,
    overwrote the earlier jobs' result.json and .hydra/ and failed on their checkpoints, and an Optuna study
    recorded those failures as trials. A grid sweep run again with ``ckpt_path=last`` (a SLURM batch job
    requeued, where an unset ckpt_path means last) resumes its jobs there, as each run would."""
    found = results_in(sweep_dir)
    if not found or (resumes and not optuna):
        return
    how = ("; to add trials to the Optuna study, run with a new hydra.sweep.dir and the same hydra.sweeper.storage and "
           "hydra.sweeper.study_name" if optuna else "; or ckpt_path=last to resume its jobs there")
    raise ConfigError(f"hydra.sweep.dir={sweep_dir} already holds a sweep ({', '.join(found)}); expected a new sweep "
                      f"directory (leave hydra.sweep.dir unset for a dated one){how}")


def summary_statuses(sweep_dir: str | Path) -> list[dict[str, str]]:
    path = Path(sweep_dir) / SUMMARY_FILE
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def check_some_job_ran(sweep_dir: str | Path) -> None:
    """A sweep in which every job failed (a fixed option every trial shares, with failed_trial_value set so the
    sweep went on) is an error, not a study that "succeeded" on failed_trial_value. Diverged or stopped jobs
    ran: a sweep of them ends with status 0 (see summary.csv)."""
    rows = summary_statuses(sweep_dir)
    if not rows or any(row.get("status") != "failed" for row in rows):
        return
    first = next((row.get("error") for row in rows if row.get("error")), "")
    failed = f"all {len(rows)} jobs of the sweep failed" if len(rows) > 1 else "the only job of the sweep failed"
    shown = f" ({'first: ' if len(rows) > 1 else ''}{first})" if first else ""
    raise ConfigError(f"{failed}{shown}; see {Path(sweep_dir) / SUMMARY_FILE}")


class SweepOptionsCheck(Callback):  # Hydra calls every hook of every callback: the base class's do nothing
    """A Hydra callback (``hydra.callbacks`` in conf/hydra/default.yaml). When a multirun starts, before the sweeper
    builds its study: the sweeper's options, ``failed_trial_value``, that an Optuna sweep searches something, and
    that the sweep folder holds no earlier sweep. When it ends: that some job did not fail (exit status 2 if all did)."""

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        def checks() -> None:
            check_slurm_reachable(OmegaConf.select(config, "hydra.launcher._target_"))  # the machine first
            sweeper = config.hydra.sweeper
            check_sweeper_options(sweeper)
            direction = sweeper.get("direction") if is_optuna(sweeper) else None
            check_failed_trial_value(config.get("failed_trial_value"), config.get("optimized_metric"), direction)
            check_something_searched(sweeper, list(config.hydra.overrides.task))
            ckpt_path = config.get("ckpt_path")
            from gan.utils.config import slurm_batch_job_id

            resumes = ckpt_path == "last" or (ckpt_path is None and slurm_batch_job_id() is not None)
            check_sweep_dir_is_new(config.hydra.sweep.dir, is_optuna(sweeper), resumes)

        stop_on_user_error(checks)

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        stop_on_user_error(lambda: check_some_job_ran(config.hydra.sweep.dir))


def check_slurm_reachable(launcher: str | None) -> None:
    """The SLURM launcher on a machine without SLURM: submitit's 28-line traceback ("Could not detect "srun", are you
    indeed on a slurm cluster?"), status 1 (an audit)."""
    import shutil

    if launcher and "SlurmLauncher" in str(launcher) and shutil.which("sbatch") is None:
        raise ConfigError("hydra/launcher=slurm submits every job to SLURM, but this machine has no SLURM (no sbatch on "
                          "PATH); expected a SLURM login node, or the default launcher (leave hydra/launcher out)")
