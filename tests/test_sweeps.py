"""Hydra sweeps: the optimized metric, failed trials, the sqlite study and the summary table."""
import csv
import math
import os
import re
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
    from gan.utils.provenance import code_label  # the code each job ran, as this process reads the same checkout

    assert [row["code"] for row in rows] == [code_label() or ""] * 2
    for row in rows:  # the trial's value is its final val/mode_coverage/modes, a whole number of modes
        assert float(row["objective"]) == float(row["val/mode_coverage/modes"]) and float(row["objective"]).is_integer()
        assert (tmp_path / "first" / row["job"] / "checkpoints" / "last.ckpt").exists()

    # The same study again (basic launcher), with a trial that fails: the sweep goes on, and as no job of it
    # completed, it ends with status 2 and one line saying so.
    second = sweep(tmp_path / "second", tmp_path, "hydra.sweeper.n_trials=1", "model.n_critic=0")
    assert second.returncode == 2, second.stderr[-3000:]
    assert second.stderr.strip().splitlines()[-1] == ("error: the only job of the sweep failed (model.n_critic must be a "
                                                      f"positive integer, got 0); see {tmp_path / 'second' / 'summary.csv'}")
    failed = list(csv.DictReader(open(tmp_path / "second" / "summary.csv")))
    assert [(row["status"], float(row["objective"])) for row in failed] == [("failed", -1.0)]
    assert "n_critic must be a positive integer, got 0" in failed[0]["error"]
    assert "error: model.n_critic must be a positive integer, got 0\n" in second.stderr  # the job's one line

    study = optuna.load_study(study_name="dcgan-toy2d_ring", storage=f"sqlite:///{tmp_path / 'optuna' / 'dcgan-toy2d_ring.db'}")
    values = [trial.value for trial in study.trials]
    assert len(values) == 3 and values[2] == -1.0
    assert sorted(values[:2]) == sorted(float(row["objective"]) for row in rows)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE

    # A job that stops the sweep exits before the sweeper tells the study its trial's outcome: the job marks its
    # trial failed (it stayed RUNNING in the sqlite file for good), whether no failed_trial_value lets the sweep go
    # on past a refused option or the objective is never logged (which stops a sweep whatever failed_trial_value).
    for name, stop in (("refused", ["model.n_critic=0", "failed_trial_value=null"]),
                       ("objective", ["optimized_metric=val/fid"])):
        stopped = sweep(tmp_path / name, tmp_path, *stop)
        assert stopped.returncode == 2, stopped.stderr[-3000:]
        [row] = list(csv.DictReader(open(tmp_path / name / "summary.csv")))
        study = optuna.load_study(study_name="dcgan-toy2d_ring", storage=f"sqlite:///{tmp_path / 'optuna' / 'dcgan-toy2d_ring.db'}")
        last = study.trials[-1]
        assert last.state == optuna.trial.TrialState.FAIL, (name, last.state)
        assert last.params and all(row[key] == str(value) for key, value in last.params.items())  # this job's trial
    assert [trial.state.name for trial in study.trials] == ["COMPLETE"] * 3 + ["FAIL"] * 2


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
    # scored at the run's last generator step: logged (a mutation audit refused it)
    (["data=digits", "generator_steps=250", "metrics.every_n_generator_steps=250", "optimized_metric=val/fid_digits"], None),
    (["data=digits", "generator_steps=249", "metrics.every_n_generator_steps=250", "optimized_metric=val/fid_digits"],
     r"first scored at generator step 250 .* generator_steps=249"),
])
def test_an_objective_the_run_never_logs_is_rejected_before_training(make_cfg, overrides, message):
    from gan.utils.errors import ConfigError
    from gan.job import check_objective

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
    from gan.job import check_search_space

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
    # Optuna's "Record does not exist" traceback once the sweep ended with no trial; SQLAlchemy's OperationalError
    ({"direction": "maximize", "n_trials": 0}, r"^hydra.sweeper.n_trials=0: expected an integer >= 1$"),
    ({"direction": "maximize", "n_trials": -3}, r"^hydra.sweeper.n_trials=-3: expected an integer >= 1$"),
    ({"direction": "maximize", "n_jobs": 0}, r"^hydra.sweeper.n_jobs=0: expected an integer >= 1$"),
    ({"direction": "maximize", "storage": "sqlite:////proc/nope/s.db"},
     r"^hydra.sweeper.storage=sqlite:////proc/nope/s.db: cannot write the folder /proc/nope \(.*\); expected a sqlite file "
     r"in a folder this user can create and write$"),
])
def test_the_optuna_sweepers_options_are_checked_before_the_study(options, message):
    """Optuna refused them only when it created the study, with a traceback (ValueError, sqlalchemy's ArgumentError)."""
    from gan.utils.errors import ConfigError
    from gan.utils.sweep import OPTUNA_SWEEPER, check_sweeper_options

    sweeper = OmegaConf.create({"_target_": OPTUNA_SWEEPER, "n_trials": 2, "n_jobs": 1, **options})
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


# --- a sweep's folder, refused jobs, failed_trial_value, stopped jobs, the study's seed (probe 2, 2026-12-05) ---

TOY_SWEEP = ["data=toy2d_grid", "presets=none", "model=dcgan", "model.generator.width=1", "model.discriminator.width=1",
             "model.generator.latent_dim=2", "generator_steps=4", "cpu_threads=1", "data.batch_size=8",
             "callbacks.sample_grid.num_points=64", "logger=none"]


def train_py(tmp_path, *args):
    flags = [arg for arg in args if arg == "-m"]  # Hydra's argparse wants -m before the overrides
    command = [sys.executable, "train.py", *flags, *TOY_SWEEP, f"paths.log_dir={tmp_path / 'logs'}",
               *(arg for arg in args if arg != "-m")]
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"})


def summary(sweep_dir):
    return list(csv.DictReader(open(sweep_dir / "summary.csv")))


@pytest.mark.slow
def test_a_refused_job_is_recorded_and_a_second_sweep_does_not_overwrite_the_first(tmp_path):
    """A job refused by check_run_options (seed=-1) had no row and stopped the sweep despite failed_trial_value;
    a second sweep into the same folder overwrote the first one's results before its first job failed."""
    sweep_dir = tmp_path / "sweep"
    first = train_py(tmp_path, "-m", "seed=1,-1,2", "+failed_trial_value=-1", f"hydra.sweep.dir={sweep_dir}")
    assert first.returncode == 0, first.stderr[-3000:]
    rows = summary(sweep_dir)
    assert [(r["job"], r["status"], r["objective"]) for r in rows] == [("0", "completed", ""), ("1", "failed", "-1.0"),
                                                                       ("2", "completed", "")]
    assert rows[1]["error"] == "seed=-1 is not valid: expected an integer from 0 to 4294967295"
    # said once per job, with its result (also at each job's start until an audit: five times here)
    assert (first.stdout + first.stderr).count("Sweep summary: ") == 3
    before = {path: path.read_bytes() for path in sweep_dir.rglob("*") if path.is_file()}

    again = train_py(tmp_path, "-m", "seed=3,4", f"hydra.sweep.dir={sweep_dir}")
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"error: hydra.sweep.dir={sweep_dir} already holds a sweep (summary.csv, 3 job results, checkpoints of 2 jobs); "
        "expected a new sweep directory (leave hydra.sweep.dir unset for a dated one); or ckpt_path=last to resume its jobs there"]
    assert {path: path.read_bytes() for path in sweep_dir.rglob("*") if path.is_file()} == before


@pytest.mark.slow
def test_a_sweep_in_which_every_job_failed_exits_2_and_stopped_jobs_are_not_completed(tmp_path):
    failed = train_py(tmp_path, "-m", "hparams_search=optuna_toy", "hydra.sweeper.n_trials=2",
                      "metrics.every_n_generator_steps=2", "model.discriminator.width=-1", f"hydra.sweep.dir={tmp_path / 'a'}")
    assert failed.returncode == 2, failed.stderr[-3000:]
    assert re.fullmatch(rf"error: all 2 jobs of the sweep failed \(first: model.discriminator.width=-1: network sizes .*\); "
                        rf"see {re.escape(str(tmp_path / 'a' / 'summary.csv'))}", failed.stderr.strip().splitlines()[-1])

    collapse = ["callbacks.gan_health.mode_collapse.action=stop", "callbacks.gan_health.mode_collapse.every_n_generator_steps=1",
                "callbacks.gan_health.mode_collapse.start_generator_step=1", "callbacks.gan_health.mode_collapse.min_diversity_ratio=1.0",
                "callbacks.gan_health.mode_collapse.num_samples=64"]
    stopped = train_py(tmp_path, "-m", "seed=1", *collapse, f"hydra.sweep.dir={tmp_path / 'b'}")
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    [row] = summary(tmp_path / "b")
    assert row["status"] == "stopped" and row["train/generator_step"] == "1.0"
    assert re.fullmatch(r"stopped by GAN health: mode_collapse at generator step 1 \(diversity_ratio=.*\) \(action=stop\)", row["error"])
    single = train_py(tmp_path, *collapse, f"hydra.run.dir={tmp_path / 'c'}")
    assert single.returncode == 0, single.stderr[-3000:]
    assert re.fullmatch(r"warning: stopped by GAN health: mode_collapse at generator step 1 \(.*\) \(action=stop\); "
                        r"the run did not train to the end", single.stderr.strip())


@pytest.mark.slow
def test_a_job_cut_off_by_anothers_error_in_a_parallel_sweep_has_a_running_row(tmp_path):
    # job 1 fails once job 0 is recorded as running (failing at once, it could precede job 0's start under load)
    gate = "+callbacks.gate._target_=tests.sweep_gate.FailWhenAnotherJobRuns"
    result = train_py(tmp_path, "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "generator_steps=3000", gate,
                      f"+callbacks.gate.summary={tmp_path / 's' / 'summary.csv'}", "+callbacks.gate.fail=false,true",
                      f"hydra.sweep.dir={tmp_path / 's'}")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "error: a deliberate failure, job 0 running" in result.stderr
    assert [(r["job"], r["status"]) for r in summary(tmp_path / "s")] == [("0", "running"), ("1", "failed")]


def test_check_sweep_dir_is_new(tmp_path):
    from gan.utils.errors import ConfigError
    from gan.utils.sweep import check_sweep_dir_is_new

    check_sweep_dir_is_new(tmp_path / "none", optuna=True)
    (tmp_path / "0" / "checkpoints").mkdir(parents=True)
    (tmp_path / "0" / ".hydra").mkdir()
    check_sweep_dir_is_new(tmp_path, optuna=True)  # Hydra's own files only: a sweep that never got far
    (tmp_path / "0" / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(ConfigError, match=rf"^hydra.sweep.dir={re.escape(str(tmp_path))} already holds a sweep \(checkpoints "
                                          r"of 1 job\); expected a new sweep directory \(leave hydra.sweep.dir unset for a "
                                          r"dated one\); to add trials to the Optuna study, run with a new hydra.sweep.dir "
                                          r"and the same hydra.sweeper.storage and hydra.sweeper.study_name$"):
        check_sweep_dir_is_new(tmp_path, optuna=True)
    check_sweep_dir_is_new(tmp_path, optuna=False, resumes=True)  # ckpt_path=last: a grid sweep's jobs resume there
    with pytest.raises(ConfigError, match="already holds a sweep"):
        check_sweep_dir_is_new(tmp_path, optuna=True, resumes=True)  # new trials, new parameters: never


@pytest.mark.parametrize("value,direction,message", [
    (-1, "maximize", None), (0, "maximize", None), (1e6, "minimize", None), (-1e6, None, None), (float("-inf"), "maximize", None),
    ("abc", None, r"^failed_trial_value=abc: expected a number \(what a failed or diverged trial returns\)$"),
    (True, "maximize", r"^failed_trial_value=True: expected a number"),
    (float("nan"), "minimize", r"^failed_trial_value=nan: expected a number"),
    (100, "maximize", r"^failed_trial_value=100 would rank failed trials above real values of val/m \(direction maximize, and "
                      r"the metrics are >= 0\); expected a value <= 0, below any real one \(e.g. -1\)$"),
    (-1.0, "minimize", r"^failed_trial_value=-1.0 would rank failed trials above real values of val/m \(direction minimize, "
                       r"and the metrics are >= 0\); expected a value above any real one \(e.g. 1e6\)$"),
])
def test_failed_trial_value_is_a_number_that_ranks_below_real_values(value, direction, message):
    from gan.utils.errors import ConfigError
    from gan.utils.sweep import check_failed_trial_value

    if message is None:
        check_failed_trial_value(value, "val/m", direction)
    else:
        with pytest.raises(ConfigError, match=message):
            check_failed_trial_value(value, "val/m", direction)


def test_an_optuna_sweep_must_search_something():
    from gan.utils.errors import ConfigError
    from gan.utils.sweep import check_something_searched

    cfg = compose_sweep(["hparams_search=optuna_study"])
    with pytest.raises(ConfigError, match=r"^hydra.sweeper.params is empty and no override sweeps a value, so every trial "
                                          r"would be the same run; expected hparams_search=optuna, optuna_r3gan or optuna_toy, "
                                          r"or a searched option such as 'model.n_critic=choice\(1,2,5\)'$"):
        check_something_searched(cfg.hydra.sweeper, ["seed=3"])
    check_something_searched(cfg.hydra.sweeper, ["model.n_critic=choice(1,2)"])
    check_something_searched(compose_sweep(["hparams_search=optuna_toy"]).hydra.sweeper, [])


def test_a_sweep_whose_jobs_all_failed_is_an_error_and_diverged_ones_are_not(tmp_path):
    from gan.utils.errors import ConfigError
    from gan.utils.sweep import check_some_job_ran

    check_some_job_ran(tmp_path)  # no summary: nothing to say
    write_result(tmp_path / "0", {"job": 0, "status": "failed", "objective": -1.0, "error": "model.n_critic=0: no"})
    write_result(tmp_path / "1", {"job": 1, "status": "failed", "objective": -1.0, "error": "model.n_critic=0: no"})
    write_summary(tmp_path)
    with pytest.raises(ConfigError, match=rf"^all 2 jobs of the sweep failed \(first: model.n_critic=0: no\); see "
                                          rf"{re.escape(str(tmp_path / 'summary.csv'))}$"):
        check_some_job_ran(tmp_path)
    write_result(tmp_path / "1", {"job": 1, "status": "diverged", "objective": -1.0, "error": "training diverged: ..."})
    write_summary(tmp_path)
    check_some_job_ran(tmp_path)  # a diverged job ran (documented: the sweep ends with status 0)


def test_adding_trials_to_a_study_reseeds_its_sampler(tmp_path):
    """A fixed TPE seed re-drew the first trials' points when a new sweep added trials to a stored study."""
    import optuna

    from gan.utils.sweep import optuna_sampler_seed

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    assert optuna_sampler_seed(1234, storage, "s") == 1234  # no file yet
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    assert optuna_sampler_seed(1234, storage, "s") == 1237
    assert optuna_sampler_seed(1234, storage, "other") == 1234 and optuna_sampler_seed(1234, None, "s") == 1234
    cfg = compose_sweep(["hparams_search=optuna_toy", f"paths.log_dir={tmp_path}", "model=dcgan", "data=toy2d_ring"])
    assert cfg.hydra.sweeper.sampler.seed == 1234


def test_a_local_sweep_of_ddp_jobs_is_refused_before_any_process_starts(tmp_path):
    """Lightning starts the other ranks by running the command line again, which ran the sweep again: rank 1
    refused the sweep folder rank 0 had made, then every process was killed (status 137; an audit)."""
    sweep_dir = tmp_path / "sweep"
    result = train_py(tmp_path, "-m", "trainer=ddp_cpu", "seed=1,2", f"hydra.sweep.dir={sweep_dir}")
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        "error: trainer=ddp_cpu (trainer.strategy=ddp_find_unused_parameters_true, trainer.devices=2) in a multirun (-m): "
        "Lightning "
        "starts the other processes by running the command line again, which would run the sweep again in each; "
        "expected one run per command (python train.py trainer=... without -m), or DDP jobs swept with hydra/launcher=slurm")
    assert [row["status"] for row in summary(sweep_dir)] == ["failed"] and not (sweep_dir / "0" / "checkpoints").exists()


def test_summary_rows_are_in_job_order_past_job_9(tmp_path):
    """The result files are found in path order, where job 10 comes before job 2 (a mutation audit)."""
    import json

    from gan.utils.sweep import RESULT_FILE, summary_rows

    for job in (2, 10, 1):
        (tmp_path / str(job)).mkdir()
        (tmp_path / str(job) / RESULT_FILE).write_text(json.dumps({"job": job, "status": "completed"}))
    assert [row["job"] for row in summary_rows(tmp_path)] == [1, 2, 10]


def test_the_stopped_trial_failed_in_the_study_is_the_one_whose_every_value_the_job_had(tmp_path):
    """A trial sharing one searched value with the job (the newer one here) is not the job's trial (a mutation audit)."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    from gan.utils.sweep import OPTUNA_SWEEPER, fail_stopped_trial

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    space = {"a": CategoricalDistribution([1, 2]), "b": CategoricalDistribution([2, 3])}
    older = study.ask({name: distribution for name, distribution in space.items()})
    while older.params != {"a": 1, "b": 2}:  # the values a job ran with, asked for by fixing them
        study.tell(older, state=optuna.trial.TrialState.FAIL)
        older = study.ask(space)
    newer = study.enqueue_trial({"a": 1, "b": 3}) or study.ask(space)
    assert newer.params == {"a": 1, "b": 3}
    sweeper = {"_target_": OPTUNA_SWEEPER, "storage": storage, "study_name": "s"}
    assert fail_stopped_trial(sweeper, ["a=1", "b=2", "seed=0"]) == older.number
    states = {trial.number: trial.state for trial in optuna.load_study(study_name="s", storage=storage).trials}
    assert states[older.number] == optuna.trial.TrialState.FAIL and states[newer.number] == optuna.trial.TrialState.RUNNING
    assert fail_stopped_trial(sweeper, ["a=2", "b=2"]) is None  # no running trial has those values


def job_of(tmp_path, multirun: bool, **options):
    from hydra.types import RunMode

    from gan.job import Job

    cfg = OmegaConf.create({"generator_steps": 10, "optimized_metric": None, "failed_trial_value": None,
                            "paths": {"output_dir": str(tmp_path / "0")}, **options})
    hydra_cfg = OmegaConf.create({"mode": RunMode.MULTIRUN if multirun else RunMode.RUN, "job": {"num": 0},
                                  "overrides": {"task": ["seed=1"]}, "sweep": {"dir": str(tmp_path)}})
    return Job(cfg, hydra_cfg)


def test_a_run_one_generator_step_short_of_its_length_is_said_and_recorded_as_stopped(tmp_path, capsys):
    """A mutation audit: a run cut off (trainer.max_time, a callback) one step before its end passed as completed."""
    from types import SimpleNamespace

    from gan.utils.sweep import summary_rows

    ended = {"stopped_by": None, "module": SimpleNamespace(generator_steps=9)}
    job_of(tmp_path, multirun=False).finished({}, ended)
    assert capsys.readouterr().err == ("warning: stopped at generator step 9 of generator_steps=10; the run did not "
                                       "train to the end\n")
    job_of(tmp_path, multirun=True).finished({}, ended)
    assert [row["status"] for row in summary_rows(tmp_path)] == ["stopped"] and "generator step 9" in capsys.readouterr().err
    job_of(tmp_path, multirun=True).finished({}, {"stopped_by": None, "module": SimpleNamespace(generator_steps=10)})
    assert [row["status"] for row in summary_rows(tmp_path)] == ["completed"] and capsys.readouterr().err == ""


def test_a_diverged_trial_returns_and_records_the_sweep_s_failed_trial_value(tmp_path, capsys):
    from types import SimpleNamespace

    from gan.utils.sweep import summary_rows

    diverged = {"stopped_by": {"kind": "divergence", "generator_step": 4, "evidence": {"train/d/loss": float("nan")}},
                "module": SimpleNamespace(generator_steps=4)}
    assert job_of(tmp_path, multirun=True, failed_trial_value=-1).finished({}, diverged) == -1.0
    [row] = summary_rows(tmp_path)
    assert row["status"] == "diverged" and row["objective"] == -1.0
    assert capsys.readouterr().err.startswith("error: training diverged: divergence at generator step 4")
    assert job_of(tmp_path, multirun=True).finished({}, diverged) is None  # no failed_trial_value: a failed trial


def test_a_requeued_slurm_batch_job_s_grid_sweep_resumes_in_its_folder(tmp_path, monkeypatch, capsys):
    """A SLURM batch job requeued starts again with no ckpt_path, which means last there: its grid sweep's folder,
    which holds the first start's results, is resumed, not refused (an interactive allocation is not a batch job)."""
    import json

    from gan.utils.sweep import RESULT_FILE, SweepOptionsCheck

    (tmp_path / "0").mkdir()
    (tmp_path / "0" / RESULT_FILE).write_text(json.dumps({"job": 0, "status": "completed"}))

    def start(ckpt_path=None):
        SweepOptionsCheck().on_multirun_start(config=OmegaConf.create({
            "hydra": {"launcher": {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"},
                      "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"},
                      "overrides": {"task": ["seed=1,2"]}, "sweep": {"dir": str(tmp_path)}},
            "failed_trial_value": None, "optimized_metric": None, "ckpt_path": ckpt_path}))

    for variable in ("SLURM_JOB_ID", "SLURM_JOB_NAME"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(SystemExit) as refused:  # a second sweep in the folder
        start()
    assert refused.value.code == 2 and "already holds a sweep" in capsys.readouterr().err
    start(ckpt_path="last")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    start()
    monkeypatch.setenv("SLURM_JOB_NAME", "bash")
    with pytest.raises(SystemExit):
        start()
