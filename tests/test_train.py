"""End-to-end runs through train.train on the composed config (tiny networks, CPU, a few steps)."""
import csv
import math
import subprocess
import sys

import lightning.pytorch as pl
import pytest
import torch

import gan
from gan.utils.checkpoint import load_checkpoint
from gan.utils.config import PROJECT_ROOT
from gan.utils.instantiate import instantiate_group
from tests.conftest import MODELS, tiny_overrides
from train import train


def data_for(model):
    return "toy2d_grid" if model in ("gan", "wgan_gp") else "digits"


@pytest.mark.parametrize("model", MODELS)
def test_each_variant_trains_and_writes_grid_and_checkpoint(make_cfg, tmp_path, model):
    cfg = make_cfg(tiny_overrides(model, data_for(model), steps=3))
    metrics, objects = train(cfg)
    module = objects["module"]
    assert module.generator_steps == 3
    assert module.discriminator_steps == 3 * module.n_critic
    out = tmp_path / "run"
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == ["gstep_0000002.png", "gstep_0000003.png"]
    last = out / "checkpoints" / "last.ckpt"
    checkpoint = load_checkpoint(last)  # weights_only=True inside
    assert checkpoint["gan_counters"] == {"generator_steps": 3, "discriminator_steps": 3 * module.n_critic}
    assert checkpoint["run_config"]["model"]["_target_"] == "gan.module.GANModule"
    assert "train/d/loss" in metrics and "train/g/loss" in metrics
    generator = gan.load_generator(last)
    samples = generator.sample(5)
    assert samples.shape == (5, *cfg.data.sample_shape)
    # the weights the run shows and scores: the EMA copy once it has been updated (model=r3gan), else G's
    for name, param in module.sampling_generator.state_dict().items():
        assert torch.equal(param, generator.state_dict()[name])


@pytest.mark.parametrize("switch, left_out", [("enable_progress_bar", pl.callbacks.ProgressBar),
                                               ("enable_checkpointing", pl.callbacks.Checkpoint)])
def test_trainer_switches_leave_out_their_callbacks_instead_of_failing(make_cfg, tmp_path, switch, left_out):
    # Lightning refuses enable_progress_bar=false beside a progress-bar callback (the default group has one)
    tiny = [o for o in tiny_overrides("dcgan", steps=2) if o != "callbacks.progress_bar=null"]
    cfg = make_cfg(tiny + [f"+trainer.{switch}=false"])
    assert any(isinstance(c, left_out) for c in instantiate_group(cfg.callbacks))  # the group still lists it
    _, objects = train(cfg)
    assert objects["module"].generator_steps == 2
    assert not any(isinstance(c, left_out) for c in objects["trainer"].callbacks)
    assert (tmp_path / "run" / "checkpoints").exists() == (switch != "enable_checkpointing")


def test_without_the_progress_bar_callback_lightning_puts_none_in_its_place(make_cfg, tmp_path):
    """callbacks.progress_bar=null left Lightning's own bar, which counted training batches against max_steps'
    optimizer steps ("600/12000" at the end of a 6,000-step run); asked for explicitly, it is there."""
    from lightning.pytorch.callbacks import ProgressBar

    _, objects = train(make_cfg(tiny_overrides("dcgan", "toy2d_ring", steps=2)))  # tiny_overrides nulls the callback
    assert objects["trainer"].progress_bar_callback is None
    _, objects = train(make_cfg(tiny_overrides("dcgan", "toy2d_ring", steps=2) + ["+trainer.enable_progress_bar=true"],
                                output_dir=tmp_path / "asked"))
    assert isinstance(objects["trainer"].progress_bar_callback, ProgressBar)


def test_gradient_penalty_is_logged(make_cfg):
    metrics, _ = train(make_cfg(tiny_overrides("wgan_gp", "digits", steps=2)))
    assert metrics["train/d/gp"] >= 0
    assert {"train/d/real_score", "train/d/fake_score"} <= set(metrics)


def test_load_generator_uses_ema_weights_when_present(make_cfg, tmp_path):
    _, objects = train(make_cfg(tiny_overrides("dcgan", steps=3) + ["model.ema_decay=0.5"]))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ema = objects["module"].generator_ema.module.state_dict()
    loaded = gan.load_generator(last)
    assert loaded.uses_ema_weights
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in ema.items())
    raw = gan.load_generator(last, use_ema=False)
    assert not raw.uses_ema_weights
    assert not all(torch.equal(v, raw.state_dict()[k]) for k, v in ema.items())


def test_load_generator_uses_the_raw_generator_before_the_first_ema_update(make_cfg, tmp_path):
    _, objects = train(make_cfg(tiny_overrides("dcgan", steps=3) + ["model.ema_decay=0.5", "model.ema_start=100"]))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert int(load_checkpoint(last)["state_dict"]["generator_ema.n_averaged"]) == 0
    loaded = gan.load_generator(last)  # the EMA copy is still the untrained initial generator: not that one
    assert not loaded.uses_ema_weights
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in objects["module"].generator.state_dict().items())


def test_load_generator_on_a_device_this_machine_lacks_is_one_line(monkeypatch):
    """torch's "Found no NVIDIA driver" RuntimeError, after the checkpoint was read (an audit)."""
    from gan.utils.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"^load_generator\(device\)=cuda: this machine has 0 CUDA devices; expected cpu$"):
        gan.load_generator("any.ckpt", device="cuda")
    with pytest.raises(ConfigError, match=r"^load_generator\(device\)=gpu0 is not valid: expected cpu, cuda, cuda:<index>"):
        gan.load_generator("any.ckpt", device="gpu0")


def read_losses(path):
    with open(path) as handle:
        return [(row["step"], row.get("train/d/loss"), row.get("train/g/loss")) for row in csv.DictReader(handle)]


def test_same_seed_same_losses(make_cfg, tmp_path):
    runs = []
    for name in ("a", "b"):
        overrides = tiny_overrides("dcgan", steps=6) + ["logger=csv", "trainer.log_every_n_steps=1"]
        train(make_cfg(overrides, output_dir=tmp_path / name))
        runs.append(read_losses(tmp_path / name / "csv" / "metrics.csv"))
    assert len([r for r in runs[0] if r[1]]) >= 5
    assert runs[0] == runs[1]
    third = tiny_overrides("dcgan", steps=6) + ["logger=csv", "trainer.log_every_n_steps=1", "seed=7"]
    train(make_cfg(third, output_dir=tmp_path / "c"))
    assert read_losses(tmp_path / "c" / "csv" / "metrics.csv") != runs[0]


@pytest.mark.parametrize("logger", ["csv", "tensorboard", "wandb", "none"])
def test_loggers_record_losses(make_cfg, tmp_path, monkeypatch, logger):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    train(make_cfg(tiny_overrides("dcgan", steps=2) + [f"logger={logger}", "trainer.log_every_n_steps=1"]))
    out = tmp_path / "run"
    if logger == "csv":
        header = (out / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
        assert {"train/d/loss", "train/g/loss", "train/d/real_score", "train/d/fake_score"} <= set(header)
        assert "model" in (out / "csv" / "hparams.yaml").read_text()
    elif logger == "tensorboard":
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0}).Reload()
        assert "train/g/loss" in events.Tags()["scalars"]
        assert "samples" in events.Tags()["images"]
    elif logger == "wandb":
        from tests.wandb_offline import offline_run

        run = offline_run(out / "wandb")
        assert run["config"]["model"]["_target_"] == "gan.module.GANModule"
        assert any("train/g/loss" in row for row in run["history"])
        images = [row for row in run["history"] if row.get("samples/_type") == "images/separated"]
        assert images and (run["dir"] / "files" / images[0]["samples/filenames"][0]).exists()
    else:
        assert not (out / "csv").exists() and not (out / "wandb").exists()
    assert list((out / "samples").glob("*.png"))


def test_data_and_model_shape_mismatch_fails_before_training(make_cfg):
    cfg = make_cfg(tiny_overrides("dcgan") + ["model.generator.sample_shape=[1,32,32]", "model.discriminator.sample_shape=[1,32,32]"])
    with pytest.raises(ValueError, match=r"\[1, 28, 28\].*\[1, 32, 32\]"):
        train(cfg)


def test_multirun_gives_each_job_its_own_directory(tmp_path):
    overrides = [o for o in tiny_overrides("gan", "toy2d_grid", steps=2) if not o.startswith(("model=", "model.", "data="))]
    command = [sys.executable, "train.py", "-m", "model=gan,wgan_gp", "data=toy2d_grid", f"hydra.sweep.dir={tmp_path}",
               f"paths.data_dir={tmp_path / 'data'}", *overrides, "model.generator.latent_dim=8"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for job, model in enumerate(["gan", "wgan_gp"]):
        assert (tmp_path / str(job) / "checkpoints" / "last.ckpt").exists()
        assert len(list((tmp_path / str(job) / "samples").glob("*.png"))) == 1
        overrides = (tmp_path / str(job) / ".hydra" / "overrides.yaml").read_text()
        assert f"model={model}" in overrides


def test_generator_updates_per_iteration_set_the_length_and_keep_intervals(make_cfg, tmp_path):
    cfg = make_cfg(tiny_overrides("dcgan", steps=6) + ["model.n_critic=2", "model.n_generator=3",
                                                       "callbacks.sample_grid.every_n_generator_steps=4"])
    assert cfg.trainer.max_steps == 2 * (2 + 3)
    _, objects = train(cfg)
    module = objects["module"]
    assert (module.generator_steps, module.discriminator_steps) == (6, 4)
    # the grid fires at the batch whose updates crossed step 4 (3 -> 6), once, plus nothing extra at the end
    assert sorted(p.name for p in (tmp_path / "run" / "samples").glob("*.png")) == ["gstep_0000006.png"]


# the bar counts GAN iterations (n_critic D updates then n_generator G updates), however many a training batch holds;
# a run that ends inside a batch shows the iterations it trained
@pytest.mark.parametrize("n_critic,n_generator,iterations_per_batch,steps,iterations",
                         [(1, 1, 1, 6, 6), (5, 1, 1, 3, 3), (2, 3, 1, 6, 2), (1, 1, 2, 6, 6), (5, 1, 2, 7, 7), (1, 1, 5, 7, 7)])
def test_progress_bar_counts_gan_iterations(make_cfg, n_critic, n_generator, iterations_per_batch, steps, iterations):
    from gan.callbacks import GANProgressBar

    overrides = [o for o in tiny_overrides("dcgan", steps=steps) if o != "callbacks.progress_bar=null"]
    cfg = make_cfg(overrides + [f"model.n_critic={n_critic}", f"model.n_generator={n_generator}", "trainer.log_every_n_steps=10",
                                f"model.iterations_per_batch={iterations_per_batch}", "callbacks.progress_bar.refresh_rate=1"])
    _, objects = train(cfg)
    trainer = objects["trainer"]
    bar = next(c for c in trainer.callbacks if isinstance(c, GANProgressBar))
    assert bar.train_progress_bar.total == iterations  # what the bar showed during training
    assert bar.train_progress_bar.n == iterations  # where it ended
    assert trainer.fit_loop.epoch_loop.batch_progress.total.completed == math.ceil(iterations / iterations_per_batch)



def test_progress_bar_total_is_an_epoch_s_iterations_when_a_batch_holds_several(make_cfg, monkeypatch):
    """An epoch of 5 training batches of 2 GAN iterations each holds 10 iterations: the bar's total is 10 in the first
    epoch and the 7 left in the second; capping it at the 5 batches showed 5 of 10 (a mutation audit)."""
    from gan.callbacks import GANProgressBar

    totals = []
    start = GANProgressBar.on_train_epoch_start

    def recording_start(self, trainer, *args):
        start(self, trainer, *args)
        totals.append(self.train_progress_bar.total)

    monkeypatch.setattr(GANProgressBar, "on_train_epoch_start", recording_start)
    overrides = [o for o in tiny_overrides("dcgan", "toy2d_ring", steps=17) if o != "callbacks.progress_bar=null"]
    cfg = make_cfg(overrides + ["metrics=none", "+trainer.limit_train_batches=5", "model.iterations_per_batch=2",
                                "callbacks.progress_bar.refresh_rate=1"])
    _, objects = train(cfg)
    trainer = objects["trainer"]
    bar = next(c for c in trainer.callbacks if isinstance(c, GANProgressBar))
    assert trainer.num_training_batches == 5 and objects["module"].generator_steps == 17
    assert totals == [min(5 * 2, 17), 17 - 5 * 2]  # per epoch: min(batches x iterations per batch, iterations left)
    assert bar.train_progress_bar.n == 7


def test_a_checkpoint_s_run_config_holds_resolved_values(make_cfg, tmp_path):
    """The run config saved in checkpoints is the one the run used, every interpolation resolved: a resume or
    evaluate.py compares and rebuilds from it without the Hydra config it came from (a mutation audit: it held
    ``${optimizer_steps:...}`` for trainer.max_steps)."""
    train(make_cfg(tiny_overrides("wgan", "toy2d_ring", steps=2) + ["metrics=none"]))
    config = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["run_config"]

    def strings(node):
        if isinstance(node, dict):
            return [s for value in node.values() for s in strings(value)]
        if isinstance(node, list):
            return [s for value in node for s in strings(value)]
        return [node] if isinstance(node, str) else []

    assert not [s for s in strings(config) if "${" in s]
    assert config["trainer"]["max_steps"] == 2 * (5 + 1) and type(config["trainer"]["max_steps"]) is int  # wgan: n_critic=5
    assert config["paths"]["output_dir"] == str(tmp_path / "run")

def test_only_local_rank_zero_prepares_data(make_cfg, monkeypatch):
    """train() prepares and reads the data before building the model (to fail fast) on local rank 0 only.
    Other ranks of the node (started by Lightning after it, or together with it by torchrun or srun) leave
    both to trainer.fit, where Lightning prepares on local rank 0 behind a barrier and then sets up each rank."""
    import train as train_module
    from gan.data import DigitsDataModule

    events = []
    monkeypatch.setattr(DigitsDataModule, "prepare_data", lambda self: events.append("prepare"))
    real_setup = DigitsDataModule.setup
    monkeypatch.setattr(DigitsDataModule, "setup", lambda self, stage=None: (events.append("setup"), real_setup(self, stage))[1])
    real_build = train_module.build_module
    monkeypatch.setattr(train_module, "build_module", lambda cfg: (events.append("build"), real_build(cfg))[1])
    cfg = make_cfg(tiny_overrides("dcgan", steps=1))
    train(cfg)
    assert events[:3] == ["prepare", "setup", "build"]
    for variable in ("LOCAL_RANK", "SLURM_LOCALID"):  # torchrun / Lightning, srun
        events.clear()
        monkeypatch.setenv(variable, "1")
        train(cfg)
        assert events[0] == "build" and "setup" in events  # nothing before the model: prepared and set up inside fit
        monkeypatch.delenv(variable)


class RecordTerms(pl.Callback):
    """The module's terms as computed at every iteration (not only the logged ones)."""

    def __init__(self):
        self.per_iteration = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.per_iteration.append({k: float(v) for k, v in pl_module.last_terms.items()})


def test_terms_are_logged_every_k_iterations_with_the_value_of_that_iteration(make_cfg, tmp_path):
    recorder = RecordTerms()
    overrides = tiny_overrides("wgan_gp", steps=7) + ["logger=csv", "trainer.log_every_n_steps=3", "metrics=none"]
    metrics, _ = train(make_cfg(overrides), callbacks=[recorder])
    with open(tmp_path / "run" / "csv" / "metrics.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("train/d/loss")]
    # Lightning's step is the batch (one GAN iteration) index: the loggers get every 3rd iteration, and the last
    # (it reached only trainer.callback_metrics until 2026-12-05, while the README said the loggers)
    assert [int(row["step"]) for row in rows] == [2, 5, 6]
    names = ("train/d/loss", "train/d/gp", "train/g/loss", "train/generator_step")
    for row in rows:
        computed = recorder.per_iteration[int(row["step"])]
        assert all(float(row[name]) == pytest.approx(computed[name], rel=1e-6) for name in names)
    # the last iteration's values are what train() returns (trainer.callback_metrics)
    assert all(metrics[name] == pytest.approx(recorder.per_iteration[-1][name], rel=1e-6) for name in names)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_the_plain_optimizer_step_matches_lightnings_wrapper(make_cfg, tmp_path, monkeypatch, precision):
    """On one CPU device in 32 bits or bf16-mixed the module steps the optimizer itself (the callbacks' hooks, the update,
    Lightning's step counter) instead of going through LightningOptimizer.step(): the same losses, gradient
    norms, step counts and weights as the wrapper gives."""
    import gan.module

    taken = []
    original_step = gan.module.GANModule.step_optimizer

    def recording_step(module, optimizer):
        taken.append(module._step_hook_callbacks is not None)
        original_step(module, optimizer)

    monkeypatch.setattr(gan.module.GANModule, "step_optimizer", recording_step)
    runs = {}
    for plain in (True, False):
        if not plain:  # Lightning's wrapper, as on several devices or with mixed precision
            monkeypatch.setattr(gan.module, "lightning_step_is_plain", lambda trainer, module: False)
        taken.clear()
        overrides = tiny_overrides("wgan_gp", steps=4) + ["logger=csv", "trainer.log_every_n_steps=1",
                                                          "callbacks.grad_norm.every_n_generator_steps=1",
                                                          f"trainer.precision={precision}"]
        metrics, objects = train(make_cfg(overrides, output_dir=tmp_path / str(plain)))
        assert taken and set(taken) == {plain}
        callbacks = objects["trainer"].callbacks
        grad_norms = next(c for c in callbacks if type(c).__name__ == "GradNorm").last_logged
        assert {"grad/g/norm", "grad/d/norm"} <= set(grad_norms)  # the hook ran on the plain path too
        module = objects["module"]
        runs[plain] = (read_losses(tmp_path / str(plain) / "csv" / "metrics.csv"), grad_norms,
                       objects["trainer"].global_step, module.generator_steps, module.discriminator_steps,
                       [p.detach().clone() for p in module.parameters()])
    (losses_a, norms_a, *counts_a, weights_a), (losses_b, norms_b, *counts_b, weights_b) = runs[True], runs[False]
    assert losses_a == losses_b and norms_a == norms_b
    assert counts_a == counts_b == [4 * 6, 4, 4 * 5]  # max_steps counts both optimizers' steps
    assert all(torch.equal(a, b) for a, b in zip(weights_a, weights_b))


def test_trainer_max_time_is_a_plain_override_and_off_by_default(make_cfg):
    """`trainer.max_time=...` as the README writes it was refused (the key was not in the config: `+trainer.max_time`)."""
    from lightning.pytorch.callbacks import Timer

    from gan.utils.instantiate import build_trainer

    def timers(*overrides: str) -> list[Timer]:
        trainer = build_trainer(make_cfg([*tiny_overrides("gan", "toy2d_ring"), *overrides]).trainer, [])
        return [callback for callback in trainer.callbacks if isinstance(callback, Timer)]

    [timer] = timers("trainer.max_time=00:01:02:05")
    assert timer._duration == 3600 + 2 * 60 + 5
    assert timers() == []


def test_the_loggers_are_finished_when_fit_raises(make_cfg, monkeypatch):
    """(a mutation audit) without the try/finally a failed fit left the loggers (W&B's run) open."""
    import train as train_module

    def failing_fit(self, *args, **kwargs):
        raise RuntimeError("fit failed")

    finished = []
    monkeypatch.setattr(pl.Trainer, "fit", failing_fit)
    monkeypatch.setattr(train_module, "finish_loggers", lambda loggers, exit_code: finished.append(exit_code))
    with pytest.raises(RuntimeError, match="fit failed"):
        train(make_cfg(tiny_overrides("gan", "toy2d_ring", steps=1)))
    assert finished == [1]  # with the failure's exit code (W&B's record said a clean finish: an audit)


def test_train_logs_the_options_without_effect(make_cfg, monkeypatch, caplog):
    """(a mutation audit) train() stopped warning about options that cannot act."""
    def failing_fit(self, *args, **kwargs):
        raise RuntimeError("fit skipped")

    monkeypatch.setattr(pl.Trainer, "fit", failing_fit)
    cfg = make_cfg(tiny_overrides("dcgan", steps=1) + ["model.real_label=0.9", "model.real_label_range=[0.7,1.0]"])
    with caplog.at_level("WARNING", logger="gan"), pytest.raises(RuntimeError, match="fit skipped"):
        train(cfg)
    assert "model.real_label=0.9 has no effect: model.real_label_range=[0.7, 1.0] draws the real targets instead" in caplog.text


def test_a_run_speaks_of_generator_steps_in_its_last_lines_and_checkpoint_names(make_cfg, tmp_path, caplog):
    """A WGAN-GP run (5 D steps per G step) of 3 generator steps: Lightning's line says max_steps=18, its checkpoint
    names said step0000012 for generator step 2 (an audit: the same run's files and lines in three units)."""
    cfg = make_cfg(tiny_overrides("wgan_gp", "toy2d_ring", steps=3) + [
        "metrics=none", "callbacks.model_checkpoint.every_n_train_steps=12", "callbacks.model_checkpoint.save_top_k=-1"])
    with caplog.at_level("INFO", logger="gan"):
        _, objects = train(cfg)
    assert "Trained to generator step 3 (Lightning's global step 18: both networks' optimizer steps)" in caplog.text
    checkpoints = tmp_path / "run" / "checkpoints"
    assert sorted(path.name for path in checkpoints.glob("*.ckpt")) == ["gstep_0000002.ckpt", "last.ckpt"]
    assert load_checkpoint(checkpoints / "gstep_0000002.ckpt")["gan_counters"]["generator_steps"] == 2
