"""Hydra sweeps: the optimized metric, failed trials, the sqlite study and the summary table."""
import csv
import math
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from gan.utils.config import PROJECT_ROOT
from gan.utils.sweep import objective, parse_overrides, write_result, write_summary
from tests.conftest import tiny_overrides


def test_objective_is_the_named_metric():
    assert objective({"val/fid": 12.5, "train/g/loss": 1.0}, "val/fid") == 12.5
    assert objective({"val/fid": 12.5}, None) is None


def test_objective_of_a_diverged_run_is_the_penalty_when_one_is_set():
    assert objective({"val/fid": math.nan}, "val/fid", failed_value=1e6) == 1e6
    assert math.isnan(objective({"val/fid": math.nan}, "val/fid"))


def test_objective_names_the_logged_metrics_when_the_metric_is_missing():
    with pytest.raises(ValueError, match=r"'val/fdi' was not logged; logged metrics: \['train/g/loss', 'val/fid'\]"):
        objective({"val/fid": 1.0, "train/g/loss": 2.0}, "val/fdi")
    assert objective({"val/fid": 1.0}, "val/fdi", failed_value=-1.0) == -1.0


def test_summary_has_one_row_per_job_with_its_overrides_and_metrics(tmp_path):
    write_result(tmp_path / "1", {"job": 1, "status": "failed", "objective": 1e6, "overrides": parse_overrides(["seed=2"]),
                                  "metrics": {}, "error": "ValueError: n_critic must be a positive integer, got 0"})
    write_result(tmp_path / "0", {"job": 0, "status": "completed", "objective": 3.0,
                                  "overrides": parse_overrides(["seed=1", "model=gan"]), "metrics": {"val/fid": 3.0}})
    rows = list(csv.DictReader(open(write_summary(tmp_path))))
    assert [(r["job"], r["status"], r["objective"], r["seed"]) for r in rows] == [("0", "completed", "3.0", "1"), ("1", "failed", "1000000.0", "2")]
    assert rows[0]["model"] == "gan" and rows[0]["val/fid"] == "3.0" and rows[1]["val/fid"] == ""
    assert "n_critic" in rows[1]["error"]


def sweep(sweep_dir, log_dir, *extra):
    command = [sys.executable, "train.py", "-m", "hparams_search=optuna_toy", "hydra.sweeper.n_trials=2",
               f"hydra.sweep.dir={sweep_dir}", f"paths.log_dir={log_dir}", f"paths.data_dir={log_dir / 'data'}",
               *tiny_overrides("dcgan", "toy2d_ring", steps=4), "callbacks.sample_grid=null", "data.num_samples=256",
               "metrics.every_n_generator_steps=4", *extra]
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_optuna_study_in_sqlite_resumes_and_failed_trials_return_the_penalty(tmp_path):
    import optuna

    first = sweep(tmp_path / "first", tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")  # 2 at once
    assert first.returncode == 0, first.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "first" / "summary.csv")))
    assert [row["status"] for row in rows] == ["completed", "completed"]
    for row in rows:  # the trial's value is its final val/mode_coverage/modes, a whole number of modes
        assert float(row["objective"]) == float(row["val/mode_coverage/modes"]) and float(row["objective"]).is_integer()
        assert (tmp_path / "first" / row["job"] / "checkpoints" / "last.ckpt").exists()

    # The same study again (basic launcher), with a trial that fails: the sweep goes on.
    second = sweep(tmp_path / "second", tmp_path, "hydra.sweeper.n_trials=1", "model.n_critic=0")
    assert second.returncode == 0, second.stderr[-3000:]
    failed = list(csv.DictReader(open(tmp_path / "second" / "summary.csv")))
    assert [(row["status"], float(row["objective"])) for row in failed] == [("failed", -1.0)]
    assert "n_critic must be a positive integer, got 0" in failed[0]["error"]
    assert "error: model.n_critic must be a positive integer, got 0\n" in second.stderr  # the job's one line

    study = optuna.load_study(study_name="dcgan-toy2d_ring", storage=f"sqlite:///{tmp_path / 'optuna' / 'dcgan-toy2d_ring.db'}")
    values = [trial.value for trial in study.trials]
    assert len(values) == 3 and values[2] == -1.0
    assert sorted(values[:2]) == sorted(float(row["objective"]) for row in rows)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE


def compose_sweep(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from tests.conftest import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()
    return cfg


@pytest.mark.parametrize("data,objective,direction,failed", [
    ("digits", "val/fid_digits", "minimize", 1e6),
    ("toy2d_grid", "val/mode_coverage/modes", "maximize", -1e6),
    ("cifar10", "val/fid", "minimize", 1e6),
])
def test_optuna_optimizes_the_data_headline_metric_by_default(data, objective, direction, failed):
    cfg = compose_sweep(["hparams_search=optuna", f"data={data}"])
    assert (cfg.optimized_metric, cfg.hydra.sweeper.direction, cfg.failed_trial_value) == (objective, direction, failed)


@pytest.mark.parametrize("overrides,message", [
    (["data=digits", "optimized_metric=val/fid_digits"], None),
    (["data=toy2d_ring", "optimized_metric=val/mode_coverage/reverse_kl"], None),
    (["data=digits", "optimized_metric=val/fid"], r"optimized_metric=val/fid is not logged by this run: its metrics "
                                                  r"\(fid_digits\) log \['val/fid_digits'\]"),
    (["data=digits", "metrics=none", "optimized_metric=val/fid_digits"], r"its metrics \(none\) log nothing"),
    (["data=cifar10", "optimized_metric=val/fid"], r"val/fid is never logged: .*metrics.every_n_generator_steps=0\)"),
    (["data=digits", "callbacks.metrics=null", "optimized_metric=val/fid_digits"], r"callbacks.metrics=null"),
    # a budget shorter than the scoring interval: every trial would end before its first score
    (["data=digits", "generator_steps=100", "metrics.every_n_generator_steps=250", "optimized_metric=val/fid_digits"],
     r"^optimized_metric=val/fid_digits is never logged: it is first scored at generator step 250 \(metrics.every_n_generator_steps\) "
     r"and the run trains generator_steps=100; lower the interval or train longer$"),
])
def test_an_objective_the_run_never_logs_is_rejected_before_training(make_cfg, overrides, message):
    from gan.utils.errors import ConfigError
    from train import check_objective

    cfg = make_cfg(overrides)
    if message is None:
        check_objective(cfg)
        return
    with pytest.raises(ConfigError, match=message):
        check_objective(cfg)


@pytest.mark.parametrize("overrides,message", [
    (["hparams_search=optuna", "model=wgan_gp"], None),
    (["hparams_search=optuna_r3gan"], None),
    (["hparams_search=optuna_r3gan", "model=gan", "data=toy2d_grid"], None),  # gan's toy preset is r3gan's recipe
    (["hparams_search=optuna_toy", "model=dcgan", "data=toy2d_ring"], None),
    # r3gan's schedules set both learning rates at every step: a study over them would be 20 identical trials
    (["hparams_search=optuna_toy", "model=gan", "data=toy2d_ring"], r"searches an option no trial would use: model.schedules.lr"),
    (["hparams_search=optuna"], r"^hydra.sweeper.params searches an option no trial would use: model.schedules.lr sets lr "
                                r"of the generator and discriminator optimizers at every generator step, so "
                                r"optimizer.generator.lr=tag\(log, interval\(1e-5, 1e-3\)\) does not set it; .*"
                                r"search the schedules instead: hparams_search=optuna_r3gan$"),
])
def test_a_search_space_no_trial_would_use_is_rejected_before_training(overrides, message):
    from gan.utils.errors import ConfigError
    from train import check_search_space

    cfg = compose_sweep(overrides)
    schedules, searched = cfg.model.get("schedules"), cfg.hydra.sweeper.params
    if message is not None:
        with pytest.raises(ConfigError, match=message):
            check_search_space(schedules, searched)
        return
    check_search_space(schedules, searched)
    for key in searched:  # every searched option exists in the composed config (a typo would add a dead key)
        assert OmegaConf.select(cfg, key) is not None, key



@pytest.mark.parametrize("options,message", [
    ({"direction": "maximize", "storage": "sqlite:///study.db"}, None),
    ({"direction": ["minimize", "maximize"], "storage": None}, None),
    ({"direction": "sideways"}, r"^hydra.sweeper.direction=sideways: expected minimize or maximize"),
    ({"direction": "maximize", "storage": "notadb"}, r"^hydra.sweeper.storage=notadb: not a database URL \(.*\); expected e.g. sqlite"),
])
def test_the_optuna_sweepers_options_are_checked_before_the_study(options, message):
    """Optuna refused them only when it created the study, with a traceback (ValueError, sqlalchemy's ArgumentError)."""
    from gan.utils.errors import ConfigError
    from gan.utils.sweep import OPTUNA_SWEEPER, check_sweeper_options

    sweeper = OmegaConf.create({"_target_": OPTUNA_SWEEPER, **options})
    if message is None:
        check_sweeper_options(sweeper)
    else:
        with pytest.raises(ConfigError, match=message):
            check_sweeper_options(sweeper)
    check_sweeper_options(OmegaConf.create({"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"}))


@pytest.mark.slow
def test_a_bad_sweeper_option_stops_the_multirun_in_one_line(tmp_path):
    """Hydra turns an exception of a callback into a warning: the check exits itself, before any job."""
    command = [sys.executable, "train.py", "-m", "hparams_search=optuna_toy", "hydra.sweeper.direction=sideways",
               f"hydra.sweep.dir={tmp_path / 'sweep'}", f"paths.log_dir={tmp_path / 'logs'}", "logger=none"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == ["error: hydra.sweeper.direction=sideways: expected minimize or maximize "
                                                  "(or a list of them, one per objective)"]
    assert not (tmp_path / "sweep" / "0").exists()
