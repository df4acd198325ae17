"""GANModelCheckpoint: no non-finite weights on disk, signal handlers given back (atomic writes and a full
disk: tests/test_resume.py)."""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest
import torch

from gan.callbacks.checkpoint import first_nonfinite_tensor
from gan.utils.checkpoint import load_checkpoint
from tests.callbacks.test_gan_health import nan_from_d_step
from tests.conftest import tiny_overrides
from train import train


def test_non_finite_weights_are_never_saved_even_when_training_goes_on(make_cfg, tmp_path, monkeypatch):
    nan_from_d_step(7, monkeypatch)  # NaN weights from generator step 7 of 16
    cfg = make_cfg(tiny_overrides("gan", "toy2d_ring", steps=16) + [
        "metrics=none", "callbacks.gan_health.divergence.action=warn",  # the run goes on with NaN weights
        "callbacks.model_checkpoint.every_n_train_steps=4", "callbacks.model_checkpoint.save_top_k=-1"])
    _, objects = train(cfg)
    assert objects["module"].generator_steps == 16 and objects["stopped_by"] is None
    assert not all(torch.isfinite(p).all() for p in objects["module"].parameters())
    saved = {p.name: load_checkpoint(p) for p in (tmp_path / "run" / "checkpoints").glob("*.ckpt")}
    # saves every 2 generator steps: 2, 4, 6 hold finite weights; 8 ... 16 and the final last.ckpt were refused
    assert sorted(saved) == ["gstep_0000002.ckpt", "gstep_0000004.ckpt", "gstep_0000006.ckpt", "last.ckpt"]
    assert saved["last.ckpt"]["gan_counters"]["generator_steps"] == 6
    assert all(torch.isfinite(v).all() for c in saved.values() for v in c["state_dict"].values() if v.is_floating_point())


@pytest.mark.parametrize("where,value", [(None, None), ("layer.weight", float("nan")), ("layer.bias", -float("inf")),
                                         ("scale", float("inf"))])
def test_first_nonfinite_tensor_names_the_one_holding_nan_or_inf(where, value):
    module = torch.nn.Module()
    module.layer = torch.nn.Linear(3, 4)
    module.register_buffer("scale", torch.full((5,), 3.0e38))  # finite, though its sum of squares is not
    module.register_buffer("empty", torch.zeros(0))
    module.register_buffer("count", torch.tensor(7))  # integers cannot hold NaN/Inf
    if where is not None:
        tensor = module.get_parameter(where) if "." in where else module.get_buffer(where)
        with torch.no_grad():
            tensor.view(-1)[1] = value
    assert first_nonfinite_tensor(module) == where


def test_signal_handlers_in_place_before_training_are_restored(make_cfg):
    """Lightning's and this callback's handlers are gone once fit returns: a SIGTERM during the W&B finish or
    between multirun jobs reaches the handler the process had (by default: the process ends)."""

    def before(signum, frame):  # stands for whatever handler the process had
        pass

    previous = signal.signal(signal.SIGTERM, before)
    try:
        train(make_cfg(tiny_overrides("gan", "toy2d_ring", steps=2) + ["metrics=none"]))
        assert signal.getsignal(signal.SIGTERM) is before
        assert signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None)
    finally:
        signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------- intervals, monitors, nothing saved
@pytest.mark.parametrize("model, every, message", [
    # wgan: 6 optimizer steps per iteration, so 4 saved only every 12 (at global steps 12, 24, 36)
    ("wgan", 4, r"^callbacks.model_checkpoint.every_n_train_steps=4: Lightning's step advances by 6 per GAN iteration "
                r"\(n_critic=5 \+ n_generator=1\), so it would save only every 12 steps; expected a multiple of 6 \(e.g. 6\)$"),
    ("dcgan", 1001, r"^callbacks.model_checkpoint.every_n_train_steps=1001: Lightning's step advances by 2 per GAN iteration "
                    r"\(n_critic=1 \+ n_generator=1\), so it would save only every 2002 steps; expected a multiple of 2 "
                    r"\(e.g. 1000 or 1002\)$"),
])
def test_a_checkpoint_interval_that_is_not_a_multiple_of_an_iteration_is_refused_before_training(make_cfg, tmp_path, model,
                                                                                                  every, message):
    from gan.callbacks.checkpoint import check_checkpoint_callbacks
    from gan.utils.errors import ConfigError

    cfg = make_cfg(tiny_overrides(model, "toy2d_ring", steps=6) + [
        "metrics=none", f"callbacks.model_checkpoint.every_n_train_steps={every}", "callbacks.model_checkpoint.save_top_k=-1"])
    with pytest.raises(ConfigError, match=message):  # from the config, before anything is built (train.py)
        check_checkpoint_callbacks(cfg)
    with pytest.raises(ConfigError, match=message):  # from the callbacks the trainer holds (gan/batching.py)
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_an_iteration_s_length_counts_every_generator_update(make_cfg):
    # n_critic 1 + n_generator 2: an iteration is 3 optimizer steps, so 4 is refused and 6 is not
    from gan.callbacks.checkpoint import check_checkpoint_callbacks
    from gan.utils.errors import ConfigError

    run = tiny_overrides("dcgan", "toy2d_ring", steps=6) + ["model.n_generator=2"]
    with pytest.raises(ConfigError, match=r"advances by 3 per GAN iteration \(n_critic=1 \+ n_generator=2\)"):
        check_checkpoint_callbacks(make_cfg(run + ["callbacks.model_checkpoint.every_n_train_steps=4"]))
    check_checkpoint_callbacks(make_cfg(run + ["callbacks.model_checkpoint.every_n_train_steps=6"]))


def test_the_kept_healthy_checkpoint_is_the_newest_one_saved(tmp_path):
    import os
    from types import SimpleNamespace

    from gan.callbacks import GANHealth

    older, newer = tmp_path / "best.ckpt", tmp_path / "last.ckpt"
    older.write_bytes(b"saved first")
    newer.write_bytes(b"saved last")
    os.utime(older, (1_000_000, 1_000_000))
    os.utime(newer, (2_000_000, 2_000_000))
    callback = SimpleNamespace(last_model_path=str(newer), best_model_path=str(older))
    trainer = SimpleNamespace(checkpoint_callbacks=[callback], is_global_zero=True)
    kept = GANHealth()._keep_last_healthy(trainer)
    assert kept == str(tmp_path / "last_healthy.ckpt") and (tmp_path / "last_healthy.ckpt").read_bytes() == b"saved last"


def test_every_shipped_model_s_checkpoint_intervals_are_multiples_of_its_iteration(make_cfg):
    """The shipped configs derive the intervals from generator steps (``${optimizer_steps:...}``)."""
    from pathlib import Path

    from gan.callbacks.checkpoint import check_checkpoint_callbacks
    from gan.utils.config import PROJECT_ROOT

    for path in sorted(Path(PROJECT_ROOT, "conf", "model").glob("*.yaml")):
        for extra in ([], ["metrics.every_n_generator_steps=7"]):
            cfg = make_cfg([f"model={path.stem}", "data=toy2d_ring", *extra])
            per_iteration = cfg.model.n_critic + cfg.model.n_generator
            for name in ("model_checkpoint", "best_checkpoint"):
                every = cfg.callbacks[name].every_n_train_steps
                assert every % per_iteration == 0, (path.stem, name, every, per_iteration)
            check_checkpoint_callbacks(cfg)


def test_a_checkpoint_monitor_that_is_never_logged_is_refused(make_cfg):
    from gan.callbacks.checkpoint import check_checkpoint_monitors
    from gan.utils.errors import ConfigError

    base = tiny_overrides("dcgan", "toy2d_grid", steps=4)
    check_checkpoint_monitors(make_cfg(base))  # the shipped best_checkpoint follows the metric's headline
    check_checkpoint_monitors(make_cfg(base + ["callbacks.best_checkpoint.monitor=train/g/loss"]))  # not a metric's
    with pytest.raises(ConfigError, match=r"^callbacks.best_checkpoint.monitor=val/nope is never logged: the metrics callback "
                                          r"logs val/mode_coverage/high_quality, val/mode_coverage/modes, "
                                          r"val/mode_coverage/reverse_kl \(metrics=mode_coverage\); expected one of those$"):
        check_checkpoint_monitors(make_cfg(base + ["callbacks.best_checkpoint.monitor=val/nope"]))
    with pytest.raises(ConfigError, match=r"^callbacks.best_checkpoint.monitor=mode_coverage/modes is never logged: the "
                                          r"metrics callback logs val/mode_coverage/modes; expected "
                                          r"callbacks.best_checkpoint.monitor=val/mode_coverage/modes$"):
        check_checkpoint_monitors(make_cfg(base + ["callbacks.best_checkpoint.monitor=mode_coverage/modes"]))


def test_a_best_checkpoint_without_the_metrics_callback_is_warned_about(make_cfg, caplog):
    from gan.callbacks.checkpoint import check_checkpoint_monitors

    with caplog.at_level("WARNING", logger="gan"):
        check_checkpoint_monitors(make_cfg(tiny_overrides("dcgan", "toy2d_grid", steps=4) + ["callbacks.metrics=null"]))
    assert [r.getMessage() for r in caplog.records] == [
        "callbacks.best_checkpoint.monitor=val/mode_coverage/modes is never logged: no metric is scored (callbacks.metrics=null), "
        "so callbacks.best_checkpoint writes no checkpoint; add callbacks.best_checkpoint=null to leave it out"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="gan"):
        check_checkpoint_monitors(make_cfg(tiny_overrides("dcgan", "toy2d_grid", steps=4) + ["callbacks.metrics=null",
                                                                                           "callbacks.best_checkpoint=null"]))
    assert not caplog.records


def test_a_run_that_keeps_no_checkpoint_says_so(make_cfg, tmp_path, caplog):
    overrides = tiny_overrides("dcgan", "toy2d_ring", steps=4) + ["metrics=none"]
    with caplog.at_level("WARNING", logger="gan"):
        train(make_cfg(overrides + ["callbacks.model_checkpoint.save_last=false"]))
    assert not (tmp_path / "run" / "checkpoints").exists()
    warned = [r.getMessage() for r in caplog.records if "no checkpoint was saved" in r.getMessage()]
    assert warned == ["callbacks.model_checkpoint: no checkpoint was saved (callbacks.model_checkpoint.save_last=false and "
                      "every_n_train_steps=1000 was not reached in 8 optimizer steps): the trained weights are not kept; "
                      "set callbacks.model_checkpoint.save_last=true to keep them in last.ckpt"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="gan"):  # last.ckpt kept: nothing to say
        train(make_cfg(overrides, output_dir=tmp_path / "kept"))
    assert (tmp_path / "kept" / "checkpoints" / "last.ckpt").is_file()
    assert not [r for r in caplog.records if "no checkpoint was saved" in r.getMessage()]


def test_the_end_of_run_hint_names_last_ckpt_only_when_it_holds_the_final_generator(tmp_path):
    from types import SimpleNamespace

    from gan.callbacks import GANModelCheckpoint
    from gan.callbacks.checkpoint import final_checkpoint

    saver = GANModelCheckpoint(dirpath=str(tmp_path), save_last=True)
    module = torch.nn.Linear(2, 2)
    trainer = SimpleNamespace(callbacks=[saver], global_step=8)
    # not saved at this step yet: its on_train_end (Lightning runs checkpoint callbacks last) saves finite weights
    assert final_checkpoint(trainer, module) == tmp_path / "last.ckpt"
    with torch.no_grad():
        module.weight[0, 0] = float("nan")
    assert final_checkpoint(trainer, module) is None  # never saved: the hint named a file that did not exist
    saver._last_global_step_saved = 8  # saved at this step: the file is what counts
    assert final_checkpoint(trainer, module) is None
    (tmp_path / "last.ckpt").write_bytes(b"x")
    assert final_checkpoint(trainer, module) == tmp_path / "last.ckpt"
    assert final_checkpoint(SimpleNamespace(callbacks=[GANModelCheckpoint(dirpath=str(tmp_path), save_last=False)],
                                            global_step=8), module) is None


def test_a_run_saved_at_an_interval_writes_its_final_weights_to_last_ckpt(make_cfg, tmp_path):
    """last.ckpt saved at global step 4 (the interval) must be written again when training ends at step 6: with no
    save at the end, it held the weights of generator step 2 (a mutation audit)."""
    cfg = make_cfg(tiny_overrides("dcgan", "toy2d_ring", steps=3) + [
        "metrics=none", "callbacks.model_checkpoint.every_n_train_steps=4"])  # optimizer steps: 2 per iteration
    _, objects = train(cfg)
    module = objects["module"]
    folder = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in folder.glob("*.ckpt")) == ["gstep_0000002.ckpt", "last.ckpt"]
    last = load_checkpoint(folder / "last.ckpt")
    assert last["global_step"] == 6 and last["gan_counters"]["generator_steps"] == 3
    assert load_checkpoint(folder / "gstep_0000002.ckpt")["gan_counters"]["generator_steps"] == 2
    final = {k: v.cpu() for k, v in module.state_dict().items()}
    assert final.keys() == last["state_dict"].keys()
    assert all(torch.equal(final[k], last["state_dict"][k]) for k in final)


def test_a_run_that_keeps_no_checkpoint_is_said_once_by_the_callback_with_an_interval(tmp_path, caplog):
    """Two checkpoint callbacks without save_last or a monitor: the one with a step interval says nothing was saved
    (naming its interval), the other says nothing. The first callback said it, naming no interval (a mutation audit)."""
    from types import SimpleNamespace

    from gan.callbacks import GANModelCheckpoint

    no_interval = GANModelCheckpoint(dirpath=str(tmp_path), save_last=False)
    with_interval = GANModelCheckpoint(dirpath=str(tmp_path), save_last=False, every_n_train_steps=1000)
    no_interval.config_key, with_interval.config_key = "callbacks.first_checkpoint", "callbacks.model_checkpoint"
    assert no_interval._every_n_train_steps == 0
    trainer = SimpleNamespace(callbacks=[no_interval, with_interval], global_step=8, is_global_zero=True)
    with caplog.at_level("WARNING", logger="gan"):
        for callback in trainer.callbacks:
            callback.on_train_end(trainer, None)
    assert [r.getMessage() for r in caplog.records] == [
        "callbacks.model_checkpoint: no checkpoint was saved (callbacks.model_checkpoint.save_last=false and "
        "every_n_train_steps=1000 was not reached in 8 optimizer steps): the trained weights are not kept; "
        "set callbacks.model_checkpoint.save_last=true to keep them in last.ckpt"]


@pytest.mark.parametrize("before, ours", [(signal.SIG_IGN, True), (signal.SIG_DFL, True), ("submitit", False)])
def test_sigusr1_is_taken_over_unless_a_handler_was_installed_before_training(tmp_path, before, ours):
    """A SIGUSR1 handler installed before training (submitit's) requeues the job itself and is left alone; an ignored
    SIGUSR1 (SIG_IGN, inherited from a parent that ignored it) is no such handler: the time-limit warning
    must still save last.ckpt. Counting SIG_IGN as a handler left the signal ignored (a mutation audit)."""
    from gan.callbacks import GANModelCheckpoint
    from gan.callbacks.checkpoint import SAVE_ON_SIGNALS

    def submitit(signum, frame):  # stands for submitit's requeue handler
        pass

    previous = {signum: signal.getsignal(signum) for signum in SAVE_ON_SIGNALS}
    try:
        signal.signal(signal.SIGUSR1, submitit if before == "submitit" else before)
        callback = GANModelCheckpoint(dirpath=str(tmp_path), save_last=True)
        callback._handlers_before_fit = {signum: signal.getsignal(signum) for signum in SAVE_ON_SIGNALS}  # as setup does
        callback.on_train_start(None, None)
        assert signal.getsignal(signal.SIGTERM) == callback._on_signal  # always ours
        expected = callback._on_signal if ours else submitit
        assert signal.getsignal(signal.SIGUSR1) == expected
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@pytest.mark.parametrize("free, shown", [(999, "999 B"), (1_500, "1.5 kB"), (1_500_000, "1.5 MB"), (2_340_000_000, "2.34 GB"),
                                         (7_000_000_000_000, "7 TB")])
def test_free_space_is_said_in_decimal_units(tmp_path, monkeypatch, free, shown):
    """kB, MB, GB are powers of 1000, as ``df -H`` says them; dividing by 1024 said 1.43 MB for 1.5 MB (a mutation audit)."""
    import shutil
    from types import SimpleNamespace

    from gan.callbacks.checkpoint import free_space

    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=10 * free, used=9 * free, free=free))
    assert free_space(tmp_path) == shown


@pytest.mark.parametrize("variables, job_id", [
    ({"SLURM_JOB_ID": "999"}, "999"),
    # an array task's own SLURM_JOB_ID (999) is not what scontrol requeues for the task: <array job>_<task>
    ({"SLURM_ARRAY_JOB_ID": "123", "SLURM_ARRAY_TASK_ID": "4", "SLURM_JOB_ID": "999"}, "123_4"),
])
def test_a_slurm_array_task_is_requeued_by_its_array_id(monkeypatch, variables, job_id):
    """(a mutation audit: the array task's requeue named the plain job id)"""
    from types import SimpleNamespace

    from lightning.fabric.plugins.environments import SLURMEnvironment

    from gan.callbacks.checkpoint import slurm_requeue_job_id

    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    def trainer(environment):
        return SimpleNamespace(_accelerator_connector=SimpleNamespace(cluster_environment=environment))

    assert slurm_requeue_job_id(trainer(SLURMEnvironment(auto_requeue=True))) == job_id
    assert slurm_requeue_job_id(trainer(SLURMEnvironment(auto_requeue=False))) is None  # Lightning's requeue off


def test_a_best_checkpoint_that_no_selected_metric_ranks_is_left_out(make_cfg, caplog):
    """metrics=[memorization] alone selects no checkpoints (its authenticity is highest far from the data): the best
    checkpoint's monitor resolved to null and Lightning then kept the newest save as best.ckpt (a README walk-through).
    Left out with a warning; a monitor named, another metric, or no scoring at all keep it as it was."""
    from gan.callbacks.checkpoint import leave_out_a_best_checkpoint_that_ranks_nothing

    memorization = ["model=dcgan", "metrics=[memorization]", "metrics.compute.memorization.extractor=digit_classifier"]
    cfg = make_cfg(memorization)
    assert cfg.callbacks.best_checkpoint.monitor is None
    with caplog.at_level("WARNING", logger="gan"):
        leave_out_a_best_checkpoint_that_ranks_nothing(cfg)
    assert cfg.callbacks.best_checkpoint is None
    assert caplog.messages == [
        "callbacks.best_checkpoint is left out: none of the selected metrics (memorization) ranks checkpoints, so best.ckpt "
        "would hold the last scored step; set metrics.monitor to one of memorization/authenticity to keep the best step by it"]
    for kept in (memorization + ["metrics.monitor=memorization/authenticity"], ["model=dcgan"],
                 ["model=dcgan", "metrics=[memorization,fid_digits]", "metrics.compute.memorization.extractor=digit_classifier"],
                 ["model=dcgan", "metrics=none"], memorization + ["callbacks.metrics=null"]):
        cfg = make_cfg(kept)
        before = cfg.callbacks.best_checkpoint
        leave_out_a_best_checkpoint_that_ranks_nothing(cfg)
        assert cfg.callbacks.best_checkpoint == before and before is not None, kept


def test_a_run_scoring_only_memorization_writes_no_best_checkpoint(make_cfg, tmp_path):
    cfg = make_cfg(tiny_overrides("dcgan", "digits", steps=2) + [
        "metrics=[memorization]", "metrics.compute.memorization.extractor=digit_classifier",
        "metrics.every_n_generator_steps=1", "metrics.num_samples=20", "metrics.num_real=20"])
    train(cfg)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.ckpt")) == ["last.ckpt"]


def test_signals_are_named_in_the_run_s_lines():
    import signal

    from gan.callbacks.checkpoint import signal_name

    assert signal_name(signal.SIGINT) == "SIGINT (2)" and signal_name(int(signal.SIGTERM)) == "SIGTERM (15)"
    assert signal_name(999) == "signal 999"  # a number the platform does not name


def same_contents(a, b, path=""):
    """The first place where two loaded checkpoints differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return f"{path}: keys {sorted(map(str, a.keys() ^ b.keys()))}"
        return next((d for k in a if (d := same_contents(a[k], b[k], f"{path}/{k}")) is not None), None)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{path}: lengths {len(a)} and {len(b)}"
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := same_contents(x, y, f"{path}/{i}")) is not None), None)
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return None if a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b) else path
    return None if type(a) is type(b) and a == b else f"{path}: {a!r} and {b!r}"


def test_last_ckpt_of_an_interval_is_a_second_name_of_its_interval_file_and_holds_the_full_save_s_state(
        make_cfg, tmp_path, monkeypatch):
    """At an interval, last.ckpt followed gstep_*.ckpt of the same step with a second full write of the same state;
    now it is a hard link to it. A save at another step (training's end) still writes in full."""
    from gan.callbacks import GANModelCheckpoint

    def run(name, steps, link=True):
        if not link:
            monkeypatch.setattr(GANModelCheckpoint, "_saved_at_this_step", lambda self, trainer, filepath: None)
        train(make_cfg(tiny_overrides("dcgan", "toy2d_ring", steps=steps) + [
            "metrics=none", "callbacks.model_checkpoint.every_n_train_steps=4",  # every 2 generator steps
            "callbacks.model_checkpoint.save_top_k=-1"], output_dir=tmp_path / name))
        monkeypatch.undo()
        return tmp_path / name / "checkpoints"

    linked, written = run("linked", 4), run("written", 2, link=False)
    assert sorted(p.name for p in linked.glob("*")) == ["gstep_0000002.ckpt", "gstep_0000004.ckpt", "last.ckpt"]
    assert (linked / "last.ckpt").samefile(linked / "gstep_0000004.ckpt")  # no second write
    assert not (written / "last.ckpt").samefile(written / "gstep_0000002.ckpt")
    assert not (linked / "gstep_0000002.ckpt").samefile(linked / "gstep_0000004.ckpt")  # no stale link
    # two full saves of one step, the interval file and last.ckpt, hold the same state, at the first interval too:
    # last.ckpt's name, which Lightning records before saving it, is recorded before the interval file's save
    interval, last = load_checkpoint(written / "gstep_0000002.ckpt"), load_checkpoint(written / "last.ckpt")
    assert same_contents(interval, last) is None, same_contents(interval, last)
    checkpoint_state = next(v for k, v in last["callbacks"].items() if "'every_n_train_steps': 4" in k)
    assert checkpoint_state["last_model_path"] == str(written / "last.ckpt")

    ended_between = run("ended_between", 5)  # training ends at generator step 5, between two intervals
    assert not (ended_between / "last.ckpt").samefile(ended_between / "gstep_0000004.ckpt")
    assert load_checkpoint(ended_between / "last.ckpt")["gan_counters"]["generator_steps"] == 5

    monkeypatch.setattr("gan.callbacks.checkpoint.os.link", lambda *_: (_ for _ in ()).throw(OSError(95, "no links")))
    copied = run("copied", 4)  # a file system without hard links: a copy, byte for byte
    assert not (copied / "last.ckpt").samefile(copied / "gstep_0000004.ckpt")
    assert (copied / "last.ckpt").read_bytes() == (copied / "gstep_0000004.ckpt").read_bytes()
    assert not list(copied.glob("*.tmp"))
    monkeypatch.undo()

    # a temporary left by a process killed between linking and renaming is removed before the next save: a full save
    # staged on another file system is moved into an existing file, which here would have overwritten the interval's
    # (a run folder on /dev/shm, another file system than the temp folder's, where there is one: as on a cluster)
    elsewhere = Path("/dev/shm")
    other_device = elsewhere.is_dir() and elsewhere.stat().st_dev != Path(tempfile.gettempdir()).stat().st_dev
    folder = Path(tempfile.mkdtemp(dir=elsewhere)) if other_device else tmp_path / "stale"
    try:
        overrides = tiny_overrides("dcgan", "toy2d_ring", steps=4) + [
            "metrics=none", "callbacks.model_checkpoint.every_n_train_steps=4", "callbacks.model_checkpoint.save_top_k=-1"]
        train(make_cfg(overrides, output_dir=folder))
        stale = folder / "checkpoints"
        os.link(stale / "gstep_0000004.ckpt", stale / "last.ckpt.tmp")
        before = (stale / "gstep_0000004.ckpt").read_bytes()
        train(make_cfg([*overrides, "generator_steps=5", "ckpt_path=last"], output_dir=folder))
        assert (stale / "gstep_0000004.ckpt").read_bytes() == before
        assert load_checkpoint(stale / "last.ckpt")["gan_counters"]["generator_steps"] == 5
    finally:
        if other_device:
            shutil.rmtree(folder, ignore_errors=True)
