"""Dashboards: what W&B, TensorBoard and CSV receive, read back from their own files."""
import csv
import json
import re
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from gan.nets import MLPGenerator
from gan.utils.logging import GENERATOR_STEP, run_group, run_name, run_tags
from tests.conftest import CONF_DIR, tiny_overrides
from tests.wandb_offline import offline_run, read_records
from train import train


def dashboard_overrides(logger, *extra):
    return [*tiny_overrides("gan", "toy2d_ring", steps=4), f"logger={logger}", "trainer.log_every_n_steps=1",
            "callbacks.grad_norm.every_n_generator_steps=2", *extra]


def test_run_name_and_tags_say_variant_data_and_key_overrides(make_cfg):
    cfg = make_cfg(["model=wgan_gp", "data=digits", "seed=3", "optimizer.generator.lr=0.001", "logger=wandb",
                    "trainer.accelerator=cpu", "callbacks.progress_bar=null", "paths.log_dir=/tmp"])
    assert cfg.logger.wandb.name == "wgan_gp-digits seed=3 optimizer.generator.lr=0.001"  # where/how-to-log overrides left out
    assert list(cfg.logger.wandb.tags) == ["dev", "wgan_gp", "digits", "wasserstein"]
    assert cfg.logger.wandb.group is None  # a single run has no group
    # resolved in place, as Hydra's `train.py --cfg job --resolve` does: a plain list from the tags resolver was
    # OmegaConf's traceback "Value 'list' is not a supported primitive type" (a README walk-through)
    OmegaConf.resolve(cfg)
    assert OmegaConf.to_container(cfg.logger.wandb.tags) == ["dev", "wgan_gp", "digits", "wasserstein"]
    # a resume keeps the name (ckpt_path left out), and a long name ends at a whole override (it cut one, an audit)
    resumed = make_cfg(["model=wgan_gp", "data=digits", "seed=3", "ckpt_path=last", "cpu_threads=1", "logger=wandb"])
    assert resumed.logger.wandb.name == "wgan_gp-digits seed=3"
    long = make_cfg(["model=wgan_gp", "data=digits", "logger=wandb", *[f"+tag{i}=value_{i:03d}" for i in range(12)]])
    assert long.logger.wandb.name == "wgan_gp-digits " + " ".join(f"+tag{i}=value_{i:03d}" for i in range(5))


def test_multirun_jobs_share_one_group(tmp_path):
    groups, previous = [], HydraConfig.instance().cfg
    for job in (0, 1):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            overrides = ["model=gan", "data=toy2d_grid", "hydra.mode=MULTIRUN", f"hydra.job.num={job}",
                         f"hydra.sweep.dir={tmp_path / '2026-01-01_00-00-00'}"]
            HydraConfig().set_config(compose("train", overrides=overrides, return_hydra_config=True))
        GlobalHydra.instance().clear()
        groups.append(run_group("train"))
    try:
        assert groups == ["train-2026-01-01_00-00-00"] * 2
        assert run_name() == "gan-toy2d_grid" and run_tags(["x"]) == ["x", "gan", "toy2d_grid", "non_saturating"]
    finally:
        HydraConfig.instance().cfg = previous  # later tests must not see a multirun


def ignore_noise(monkeypatch):
    """A generator that ignores its noise: the health callback reports mode collapse (and alerts W&B)."""
    original = MLPGenerator.generate
    monkeypatch.setattr(MLPGenerator, "generate", lambda self, z, labels=None: original(self, torch.zeros_like(z), labels))
    return ["callbacks.gan_health.mode_collapse.start_generator_step=2", "callbacks.gan_health.mode_collapse.every_n_generator_steps=2"]


@pytest.mark.slow
def test_wandb_run_holds_scalars_config_images_axis_and_alert(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    train(make_cfg(dashboard_overrides("wandb", *ignore_noise(monkeypatch), "metrics.every_n_generator_steps=2")))
    run = offline_run(tmp_path / "run" / "wandb")
    assert run["config"]["callbacks"]["grad_norm"]["every_n_generator_steps"] == 2
    rows = run["history"]
    grads = [row for row in rows if "grad/g/norm" in row]
    assert [row[GENERATOR_STEP] for row in grads] == [2, 4]
    assert all(row["grad/g_to_d_ratio"] == pytest.approx(row["grad/g/norm"] / row["grad/d/norm"]) for row in grads)
    assert [row[GENERATOR_STEP] for row in rows if "health/mode_collapse" in row] == [2]
    assert sorted({row[GENERATOR_STEP] for row in rows if "train/g/loss" in row}) == [1, 2, 3, 4]
    images = [row for row in rows if row.get("samples/_type") == "images/separated"]
    assert images and (run["dir"] / "files" / images[0]["samples/filenames"][0]).exists()
    # on the generator-step axis with the scalars (they sat on Lightning's step, an audit), captioned with it
    assert [(row[GENERATOR_STEP], row["samples/captions"]) for row in images] == [(2, ["generator step 2"]), (4, ["generator step 4"])]

    records = read_records(next(Path(run["dir"]).glob("run-*.wandb")))
    axes = {r.metric.name: r.metric.step_metric for r in records if r.WhichOneof("record_type") == "metric" and r.metric.name}
    for name in ("train/d/loss", "train/g/loss", "grad/g/norm", "grad/g/layer/net.0", "health/mode_collapse", "samples"):
        assert axes[name] == GENERATOR_STEP, name
    # the runs table gets each metric's best beside its last, by the metric's direction (it held the last only)
    kept = {r.metric.name: (r.metric.summary.min, r.metric.summary.max, r.metric.summary.last) for r in records
            if r.WhichOneof("record_type") == "metric" and r.metric.name.startswith("val/")}
    assert kept["val/mode_coverage/high_quality"] == (False, True, True) and kept["val/mode_coverage/reverse_kl"] == (True, False, True)
    assert axes["val/mode_coverage/modes"] == GENERATOR_STEP
    (info,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert info.display_name.startswith("gan-toy2d_ring generator_steps=4")
    assert {"gan", "toy2d_ring", "non_saturating"} <= set(info.tags)
    alerts = [r.alert for r in records if r.WhichOneof("record_type") == "alert"]
    assert [a.title for a in alerts] == ["GAN health: mode_collapse"]
    summary = {(item.key or "/".join(item.nested_key)): item.value_json for r in records if r.WhichOneof("record_type") == "summary"
               for item in r.summary.update}
    assert summary["health/num_events"] == "1" and summary["health/kinds"] == '"mode_collapse"'
    assert set(json.loads(summary["val/mode_coverage/high_quality"])) == {"max", "last"}


def test_tensorboard_gets_the_same_scalars_on_lightnings_axis(make_cfg, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(make_cfg(dashboard_overrides("tensorboard")))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = events.Tags()
    assert {"grad/g/norm", "grad/d/norm", "grad/g_to_d_ratio", "grad/d/layer/head", GENERATOR_STEP} <= set(tags["scalars"])
    assert "samples" in tags["images"]
    # grad norms sit at the same x as the module's losses of that generator step
    at_step = {e.step: e.value for e in events.Scalars(GENERATOR_STEP)}
    assert [at_step[e.step] for e in events.Scalars("grad/g/norm")] == [2.0, 4.0]
    assert {e.step for e in events.Scalars("grad/g/norm")} <= {e.step for e in events.Scalars("train/g/loss")}


def test_the_final_grid_sits_beside_the_losses_of_its_generator_step(make_cfg, tmp_path):
    """Grids every 3 generator steps of 4: the final one, drawn when training ends, sat one logging step after
    the losses of step 4 (an audit), where the one of step 3 sits at step 3's."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(make_cfg(dashboard_overrides("tensorboard", "callbacks.sample_grid.every_n_generator_steps=3")))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    generator_step_at = {e.step: e.value for e in events.Scalars(GENERATOR_STEP)}
    assert [generator_step_at.get(e.step) for e in events.Images("samples")] == [3.0, 4.0]


def test_csv_gets_grad_norms_with_the_generator_step(make_cfg, tmp_path):
    train(make_cfg(dashboard_overrides("csv")))
    with open(tmp_path / "run" / "csv" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    grads = [row for row in rows if row.get("grad/g/norm")]
    assert [float(row[GENERATOR_STEP]) for row in grads] == [2.0, 4.0]
    assert all(float(row["grad/g/norm"]) > 0 and float(row["grad/d/norm"]) > 0 for row in grads)


def test_logger_options_that_would_fail_after_the_model_is_built_are_one_line(tmp_path, monkeypatch):
    """A missing logger package, an unwritable save_dir and a W&B project name W&B refuses were tracebacks (the last
    two after the model and the data were built)."""
    import importlib.util

    from gan.utils.errors import ConfigError
    from gan.utils.logging import check_logger_options

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else find_spec(name, *a))
    with pytest.raises(ConfigError, match=r"^logger.mlflow: MLFlowLogger needs the package mlflow, which is not installed "
                                          r"\(pip install mlflow\), or choose another logger \(logger=csv\)$"):
        check_logger_options({"mlflow": {"_target_": "lightning.pytorch.loggers.MLFlowLogger"}})
    a_file = tmp_path / "afile"
    a_file.write_text("")
    with pytest.raises(ConfigError, match=rf"^logger.tensorboard.save_dir={a_file}: cannot write there"):
        check_logger_options({"tensorboard": {"_target_": "lightning.pytorch.loggers.TensorBoardLogger", "save_dir": str(a_file)}})
    for forbidden in "/\\#?%:":  # wandb.init refuses each (a UsageError after the model was built)
        with pytest.raises(ConfigError, match=rf"^logger.wandb.project=a{re.escape(forbidden)}b: W&B project names cannot "
                                              "contain any of "):
            check_logger_options({"wandb": {"_target_": "lightning.pytorch.loggers.WandbLogger", "project": f"a{forbidden}b"}})
    check_logger_options({"csv": {"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": str(tmp_path / "csv")},
                          "wandb": {"_target_": "lightning.pytorch.loggers.WandbLogger", "project": "gan-framework"}, "off": None})


@pytest.mark.parametrize("quiet", [True, False])
def test_wandb_is_quiet_by_default_and_its_settings_reach_wandb_init(make_cfg, tmp_path, monkeypatch, capfd, quiet):
    """W&B printed ~25 lines of run history and summary on stderr at the end of every run; the shipped
    ``logger.wandb.settings.quiet`` leaves them out. Hydra hands the logger a DictConfig, which wandb.init ignored
    (it takes a dict or its Settings), so the setting is converted before the run starts."""
    import hydra
    import wandb

    from gan.utils.logging import prepare_loggers

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    monkeypatch.delenv("WANDB_QUIET", raising=False)
    cfg = make_cfg(tiny_overrides("gan", "toy2d_ring", steps=1) + ["logger=wandb", f"logger.wandb.settings.quiet={quiet}"])
    logger = hydra.utils.instantiate(cfg.logger.wandb)
    prepare_loggers([logger])
    assert logger._wandb_init["settings"] == {"quiet": quiet} and type(logger._wandb_init["settings"]) is dict
    logger.log_metrics({"train/g/loss": 1.0}, step=0)
    assert logger.experiment.settings.quiet is quiet
    wandb.finish()
    stderr = capfd.readouterr().err
    assert ("Run summary:" in stderr) is not quiet and ("Tracking run with wandb version" in stderr) is not quiet


def test_the_upload_hint_of_an_offline_run_names_its_pieces_oldest_first_and_no_other_run(tmp_path):
    from gan.utils.logging import offline_pieces

    first, second, other = (tmp_path / name for name in ("offline-run-20240101_000000-abc", "offline-run-20240102_000000-abc",
                                                         "offline-run-20240103_000000-xyz"))
    for folder in (second, first, other):
        folder.mkdir()
    assert offline_pieces(second, "abc") == [first, second]
    assert offline_pieces(tmp_path / "offline-run-20240104_000000-new", "new") == [tmp_path / "offline-run-20240104_000000-new"]


@pytest.mark.slow
@pytest.mark.parametrize("stop, exit_code", [(None, 0), (130, 130), ("diverge", 3)])
def test_the_wandb_record_says_how_the_run_ended(make_cfg, tmp_path, monkeypatch, stop, exit_code):
    """A run stopped by a signal (its save ends in SystemExit(128 + signal)) or by divergence was recorded with no exit
    code, as a clean finish (an audit); a finished run ends with 0."""
    import lightning.pytorch as pl

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")

    class Stop(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            if pl_module.generator_steps >= 2:
                if stop == "diverge":
                    with torch.no_grad():
                        next(pl_module.generator.parameters()).fill_(float("nan"))
                else:
                    raise SystemExit(stop)

    overrides = dashboard_overrides("wandb", "metrics=none", "model.iterations_per_batch=1")
    if stop is None:
        train(make_cfg(overrides))
    elif stop == "diverge":
        _, objects = train(make_cfg(overrides), callbacks=[Stop()])
        assert objects["stopped_by"]["kind"] == "divergence"
    else:
        with pytest.raises(SystemExit):
            train(make_cfg(overrides), callbacks=[Stop()])
    offline_run(tmp_path / "run" / "wandb")  # waits for the exit record
    records = read_records(next((tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb")))
    (ended,) = [r.exit for r in records if r.WhichOneof("record_type") == "exit"]
    assert ended.exit_code == exit_code
