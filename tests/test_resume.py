"""Exact resume, atomic checkpoint writes and saving on signals."""
import errno
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch

from gan.callbacks import GANModelCheckpoint
from gan.utils.checkpoint import load_checkpoint
from gan.utils.errors import CheckpointError
from gan.utils.config import PROJECT_ROOT
from tests.conftest import tiny_overrides
from train import train


def every_checkpoint(interval: int) -> list[str]:
    return [f"callbacks.model_checkpoint.every_n_train_steps={interval}", "callbacks.model_checkpoint.save_top_k=-1",
            "metrics=none"]


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    different = [key for key in state_a if not torch.equal(state_a[key], state_b[key])]
    assert not different, f"differ after resume: {different}"


@pytest.mark.slow
@pytest.mark.parametrize("model, data, overrides, interval", [
    # n_critic = 5 and EMA: Lightning step 12 is after 2 iterations (a training batch is a whole iteration,
    # so checkpoints always fall between iterations)
    ("wgan_gp", "digits", ["model.ema_decay=0.9"], 12),
    # 80 points in batches of 8: step 10 (5 batches) is mid-pass, the resumed part crosses into pass 2;
    # the discriminator's dropout makes the result depend on the restored RNG
    ("gan", "toy2d_ring", ["data.num_samples=80"], 10),
    # the same with the set held where training runs (data.on_device: the CPU here): the indices' stream resumes
    ("gan", "toy2d_ring", ["data.num_samples=80", "data.on_device=true"], 10),
])
def test_resume_from_mid_run_checkpoint_equals_uninterrupted_run(make_cfg, tmp_path, model, data, overrides, interval):
    steps = 13 if model == "gan" else 4
    run = tiny_overrides(model, data, steps=steps) + overrides + every_checkpoint(interval)
    _, full = train(make_cfg(run, output_dir=tmp_path / "full"))
    (middle,) = [path for path in (tmp_path / "full" / "checkpoints").glob("gstep_*.ckpt")
                 if load_checkpoint(path)["global_step"] == interval]  # named by its generator step
    counters = load_checkpoint(middle)["gan_counters"]
    assert middle.name == f"gstep_{counters['generator_steps']:07d}.ckpt"
    assert counters["generator_steps"] < steps
    reads, torch_load = [], torch.load

    def counted_load(source, *args, **kwargs):  # a path (train.py's read) or an open file (Lightning's own)
        reads.append(os.fspath(source) if isinstance(source, (str, os.PathLike)) else source.name)
        return torch_load(source, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "load", counted_load)
        _, resumed = train(make_cfg(run + [f"ckpt_path={middle}"], output_dir=tmp_path / "resumed"))
    # read once: train.py's checked copy is what fit restores (it read the file a second time)
    assert [Path(read).resolve() for read in reads] == [middle.resolve()]
    assert resumed["trainer"].global_step == full["trainer"].global_step
    assert (resumed["module"].generator_steps, resumed["module"].discriminator_steps) == \
        (full["module"].generator_steps, full["module"].discriminator_steps)
    assert_same_state(full["module"], resumed["module"])  # G, D, EMA, fixed noise: both optimizers' effect
    assert not list((tmp_path / "full" / "checkpoints").glob("*.tmp"))


@pytest.mark.slow
def test_a_resume_without_the_runs_seed_continues_with_it(make_cfg, tmp_path, caplog):
    """The sampler's shuffle order follows the seed: resumed with the default seed, a seed=7 run trained on other
    batches, with other weights and no word (an audit)."""
    run = tiny_overrides("gan", "toy2d_ring", steps=13) + ["data.num_samples=80"] + every_checkpoint(10)
    _, full = train(make_cfg(run + ["seed=7"], output_dir=tmp_path / "full"))
    middle = tmp_path / "full" / "checkpoints" / "gstep_0000005.ckpt"
    with caplog.at_level("WARNING", logger="gan"):
        _, resumed = train(make_cfg(run + [f"ckpt_path={middle}"], output_dir=tmp_path / "resumed"))  # the default seed
    assert_same_state(full["module"], resumed["module"])
    assert resumed["cfg"].seed == 7 and resumed["module"].run_config["seed"] == 7  # so a later resume continues it too
    assert any(r.getMessage() == f"resuming {middle} with the seed of its run, seed=7 (its data order and random states "
               "continue), not seed=12345" for r in caplog.records)


def csv_rows(run_dir) -> list[dict]:
    import csv

    with open(run_dir / "csv" / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_a_resumed_run_continues_its_csv_log_as_the_uninterrupted_run_wrote_it(make_cfg, tmp_path):
    """Lightning's CSV logger deleted metrics.csv whenever its folder was not empty, so a resume kept only its own
    rows (an audit). A run that went on past its checkpoint (steps 5-6 of a run resumed from step 4) has those
    rows dropped, as the resumed run logs them again."""
    import shutil

    run = tiny_overrides("gan", "toy2d_ring", steps=6) + ["data.num_samples=80", "logger=csv", "trainer.log_every_n_steps=1",
                                                          *every_checkpoint(4)]
    train(make_cfg(run, output_dir=tmp_path / "full"))
    shutil.copytree(tmp_path / "full", tmp_path / "died")  # a run that died after step 6: its last checkpoint is step 4's
    middle = tmp_path / "died" / "checkpoints" / "gstep_0000002.ckpt"
    assert load_checkpoint(middle)["gan_counters"]["generator_steps"] == 2
    train(make_cfg(run + [f"ckpt_path={middle}"], output_dir=tmp_path / "died"))
    full, resumed = csv_rows(tmp_path / "full"), csv_rows(tmp_path / "died")
    assert [row["train/generator_step"] for row in full if row.get("train/g/loss")] == [f"{s}.0" for s in range(1, 7)]
    assert resumed == full  # every row, every value (the resume is exact), none twice
    # resumed twice, each from its end: the rows of all three pieces, in order
    for steps in (8, 10):
        train(make_cfg(run + [f"generator_steps={steps}", "ckpt_path=last"], output_dir=tmp_path / "died"))
    steps_logged = [row["train/generator_step"] for row in csv_rows(tmp_path / "died") if row.get("train/g/loss")]
    assert steps_logged == [f"{s}.0" for s in range(1, 11)]


@pytest.mark.slow
def test_a_resume_in_place_is_not_warned_that_its_checkpoint_folder_holds_files(make_cfg, tmp_path):
    """Lightning's "Checkpoint directory ... exists and is not empty" came on stderr at every ckpt_path=last resume,
    of the folder the run itself wrote (another run's folder is refused before it starts)."""
    import warnings

    run = tiny_overrides("gan", "toy2d_ring", steps=2) + ["metrics=none"]
    train(make_cfg(run, output_dir=tmp_path / "run"))
    longer = [o for o in run if not o.startswith("generator_steps=")] + ["generator_steps=3", "ckpt_path=last"]
    from gan.utils.console import quiet_third_party_notices

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # every warning recorded, whichever were shown before in this session ...
        quiet_third_party_notices()  # ... but those a run's process silences (at `import gan`)
        _, objects = train(make_cfg(longer, output_dir=tmp_path / "run"))
    assert objects["module"].generator_steps == 3
    assert not [str(w.message) for w in seen if "exists and is not empty" in str(w.message)]


def test_ckpt_path_last_in_a_copied_run_directory_continues_from_its_newest_checkpoint(make_cfg, tmp_path):
    """Lightning's version counter wrote last-v1.ckpt beside the copied last.ckpt, which stayed at the copy's step,
    and the next resume trained from it again (an audit)."""
    import shutil

    run = tiny_overrides("gan", "toy2d_ring", steps=2) + ["metrics=none"]
    train(make_cfg(run, output_dir=tmp_path / "a"))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    for steps in (4, 6):
        _, objects = train(make_cfg(run + [f"generator_steps={steps}", "ckpt_path=last"], output_dir=tmp_path / "b"))
        assert objects["module"].generator_steps == steps
        assert load_checkpoint(tmp_path / "b" / "checkpoints" / "last.ckpt")["gan_counters"]["generator_steps"] == steps
    assert not list((tmp_path / "b" / "checkpoints").glob("*-v*.ckpt"))


@pytest.mark.slow
def test_resume_with_data_order_or_rng_lost_differs(make_cfg, tmp_path):
    """The equality above is not vacuous: resuming without the saved RNG state gives other parameters."""
    run = tiny_overrides("gan", "toy2d_ring", steps=8) + ["data.num_samples=80"] + every_checkpoint(8)
    _, full = train(make_cfg(run, output_dir=tmp_path / "full"))
    middle = tmp_path / "full" / "checkpoints" / "gstep_0000004.ckpt"
    checkpoint = torch.load(middle, weights_only=True)
    del checkpoint["callbacks"]["ResumeState"]
    torch.save(checkpoint, tmp_path / "no_rng.ckpt")
    _, resumed = train(make_cfg(run + [f"ckpt_path={tmp_path / 'no_rng.ckpt'}"], output_dir=tmp_path / "resumed"))
    with pytest.raises(AssertionError, match="differ after resume"):
        assert_same_state(full["module"], resumed["module"])


@pytest.mark.slow
def test_resumed_run_continues_the_same_wandb_run(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tiny_overrides("gan", "toy2d_ring", steps=2) + ["logger=wandb", "metrics=none"]
    train(make_cfg(run, output_dir=tmp_path / "first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    run_id = load_checkpoint(last)["wandb_run_id"]
    _, resumed = train(make_cfg(tiny_overrides("gan", "toy2d_ring", steps=4) + ["logger=wandb", "metrics=none",
                                                                              f"ckpt_path={last}"],
                                output_dir=tmp_path / "second"))
    assert resumed["cfg"].logger.wandb.id == run_id
    assert [p.name.rsplit("-", 1)[-1] for p in (tmp_path / "second" / "wandb").glob("offline-run-*")] == [run_id]


@pytest.mark.slow
def test_the_upload_hint_of_an_offline_run_resumed_in_its_folder_names_every_piece(make_cfg, tmp_path, monkeypatch, caplog):
    """W&B writes one offline folder per start of a resumed run; the hint named the last one only (an audit)."""
    import re

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tiny_overrides("gan", "toy2d_ring", steps=2) + ["logger=wandb", "metrics=none"]
    train(make_cfg(run, output_dir=tmp_path / "run"))
    time.sleep(1.1)  # W&B names the folders by the second they start in
    with caplog.at_level("INFO", logger="gan"):
        train(make_cfg(run + ["generator_steps=4", "ckpt_path=last"], output_dir=tmp_path / "run"))
    pieces = sorted((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(pieces) == 2 and len({p.name.rsplit("-", 1)[-1] for p in pieces}) == 1
    hint = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("W&B ran offline"))
    assert re.search(r"\(2 pieces, .*\): wandb sync (\S+) (\S+)$", hint).groups() == tuple(map(str, pieces))


@pytest.mark.slow
def test_the_wandb_summary_of_a_resumed_run_keeps_the_best_of_every_piece(make_cfg, tmp_path, monkeypatch):
    """W&B keeps each value's best per start of the process, so the summary a resumed offline run's last piece
    uploads held that piece's best only (an audit: max 0.624 where the first piece had reached 0.9284). The first
    piece's best is made unbeatable in its checkpoint's metric history (a high-quality share of 2, above any real
    one), and the second piece's summary keeps it beside its own last value."""
    import json

    from tests.wandb_offline import read_records

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tiny_overrides("gan", "toy2d_ring", steps=2) + ["logger=wandb", "metrics.every_n_generator_steps=1"]
    train(make_cfg(run, output_dir=tmp_path / "run"))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    (key,) = [key for key in checkpoint["callbacks"] if key.startswith("MetricsCallback")]
    history = checkpoint["callbacks"][key]["history"]
    assert [record["generator_step"] for record in history] == [1, 2]
    history[0]["values"]["mode_coverage/high_quality"], history[1]["values"]["mode_coverage/reverse_kl"] = 2.0, -1.0
    torch.save(checkpoint, last)
    time.sleep(1.1)  # W&B names the folders by the second they start in
    train(make_cfg(run + ["generator_steps=4", "ckpt_path=last"], output_dir=tmp_path / "run"))
    second = sorted((tmp_path / "run" / "wandb").glob("offline-run-*"))[-1]
    records = read_records(next(second.glob("run-*.wandb")))
    summary = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            summary.update({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.summary.update})
    scored = [json.loads(line) for line in (tmp_path / "run" / "metrics" / "metrics.jsonl").read_text().splitlines()]
    assert [record["generator_step"] for record in scored] == [1, 2, 3, 4]
    final = scored[-1]["values"]
    assert summary["val/mode_coverage/high_quality"] == {"max": 2.0, "last": pytest.approx(final["mode_coverage/high_quality"])}
    assert summary["val/mode_coverage/reverse_kl"]["min"] == -1.0  # (its last is NaN here: modes without samples)


def test_resume_continues_the_sample_grid_schedule_and_the_health_windows(make_cfg, tmp_path):
    """Grids every 4 generator steps, a checkpoint at step 5: the resumed run draws no grid before step 8 (the
    run's end, 7), and every health detector ends with the windows of the uninterrupted run."""
    run = tiny_overrides("gan", "toy2d_ring", steps=7) + every_checkpoint(10) + [
        "callbacks.sample_grid.every_n_generator_steps=4",
        "callbacks.gan_health.vanishing_generator_gradients.reference_steps=2",
        "callbacks.gan_health.vanishing_generator_gradients.window=3"]
    _, full = train(make_cfg(run, output_dir=tmp_path / "full"))
    middle = tmp_path / "full" / "checkpoints" / "gstep_0000005.ckpt"
    _, resumed = train(make_cfg(run + [f"ckpt_path={middle}"], output_dir=tmp_path / "resumed"))
    assert sorted(p.name for p in (tmp_path / "full" / "samples").glob("*.png")) == ["gstep_0000004.png", "gstep_0000007.png"]
    assert sorted(p.name for p in (tmp_path / "resumed" / "samples").glob("*.png")) == ["gstep_0000007.png"]

    def windows(objects):
        health = next(c for c in objects["trainer"].callbacks if type(c).__name__ == "GANHealth")
        return {kind: detector.state_dict() for kind, detector in health.detectors.items()}

    assert windows(resumed) == windows(full)
    assert len(windows(full)["vanishing_generator_gradients"]["recent"]) == 3  # the windows were filled



def test_a_resumed_run_s_progress_bar_counts_only_the_iterations_left(make_cfg, tmp_path):
    """2 of 5 generator steps trained, then resumed: the bar's total and count are the 3 iterations this fit trains,
    not the 5 of the whole run (a total from max_steps rather than the steps left, or a count from the run's start
    rather than this fit's: a mutation audit)."""
    from gan.callbacks import GANProgressBar

    # a redraw at every iteration: the count is what this fit trained after each of them, not only at the end
    with_bar = ["metrics=none", "callbacks.progress_bar.refresh_rate=1", "callbacks.progress_bar.min_seconds_between_refreshes=0"]
    first = [o for o in tiny_overrides("gan", "toy2d_ring", steps=2) if o != "callbacks.progress_bar=null"] + with_bar
    train(make_cfg(first, output_dir=tmp_path / "first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert load_checkpoint(last)["gan_counters"]["generator_steps"] == 2
    longer = [o for o in tiny_overrides("gan", "toy2d_ring", steps=5) if o != "callbacks.progress_bar=null"] + with_bar
    _, resumed = train(make_cfg(longer + [f"ckpt_path={last}"], output_dir=tmp_path / "first"))
    assert resumed["module"].generator_steps == 5
    bar = next(c for c in resumed["trainer"].callbacks if isinstance(c, GANProgressBar))
    assert bar.train_progress_bar.total == 5 - 2 and bar.train_progress_bar.n == 5 - 2
    assert resumed["module"].iterations_trained - bar._iterations_before_fit == 5 - 2


def test_the_progress_bar_of_a_run_resumed_from_inside_its_epoch_counts_this_fit(make_cfg, tmp_path):
    """From a checkpoint saved mid-run (a periodic save here; a signal's, a requeued SLURM job's), Lightning leaves out
    on_train_epoch_start: the bar kept its start-up "Training" with no total and counted the earlier piece's
    iterations (an audit: 160/? for 9 iterations trained)."""
    from gan.callbacks import GANProgressBar

    with_bar = ["callbacks.progress_bar.refresh_rate=1", "callbacks.progress_bar.min_seconds_between_refreshes=0"]
    run = [o for o in tiny_overrides("gan", "toy2d_ring", steps=5) if o != "callbacks.progress_bar=null"] + with_bar
    train(make_cfg(run + every_checkpoint(4), output_dir=tmp_path / "first"))  # a save every 2 generator steps
    middle = tmp_path / "first" / "checkpoints" / "gstep_0000002.ckpt"
    assert load_checkpoint(middle)["gan_counters"]["generator_steps"] == 2
    _, resumed = train(make_cfg(run + ["metrics=none", f"ckpt_path={middle}"], output_dir=tmp_path / "second"))
    bar = next(c for c in resumed["trainer"].callbacks if isinstance(c, GANProgressBar))
    assert (bar.train_progress_bar.n, bar.train_progress_bar.total) == (5 - 2, 5 - 2)
    assert bar.train_progress_bar.desc.startswith("Epoch ")


def test_ckpt_path_last_resumes_only_when_a_checkpoint_exists(make_cfg, tmp_path):
    from train import resume_checkpoint

    cfg = make_cfg(tiny_overrides("gan", "toy2d_ring") + ["ckpt_path=last"])
    assert resume_checkpoint(cfg) is None
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"")
    assert resume_checkpoint(cfg) == str(last)


def test_resuming_with_other_networks_fails_before_training_naming_what_differs(make_cfg, tmp_path):
    run = tiny_overrides("gan", "toy2d_ring", steps=2) + ["metrics=none"]
    train(make_cfg(run, output_dir=tmp_path / "first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    wider = [o for o in run if not o.startswith("model.discriminator.hidden")] + ["model.discriminator.hidden=[16,16]"]
    with pytest.raises(CheckpointError) as refused:
        train(make_cfg(wider + [f"ckpt_path={last}"], output_dir=tmp_path / "second"))
    message = str(refused.value)
    assert message.startswith(f"cannot resume from {last}: its weights do not fit the networks this run builds (tensors: ")
    # a second hidden layer of the same width: its weights are missing from the checkpoint, the first layer's fit
    assert "(tensors: 2 missing; e.g. discriminator.blocks.1." in message and "is missing there)" in message
    assert "; the checkpoint's run had model.discriminator.hidden=[16]; " in message
    assert not (tmp_path / "second" / "checkpoints").exists()  # stopped before anything trained or saved


def test_a_resume_says_when_its_length_leaves_nothing_to_train_and_which_options_changed(make_cfg, tmp_path, caplog):
    """generator_steps is the total: fewer than the checkpoint's steps ended at once with status 0 (a user who meant
    "2 more" saw success); a changed option went on without a word, so the run was silently not exact."""
    from gan.utils.errors import ConfigError

    run = tiny_overrides("gan", "toy2d_ring", steps=2) + ["metrics=none"]
    train(make_cfg(run, output_dir=tmp_path / "first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    shorter = [o for o in run if not o.startswith("generator_steps=")] + ["generator_steps=1", f"ckpt_path={last}"]
    with pytest.raises(ConfigError) as refused:
        train(make_cfg(shorter, output_dir=tmp_path / "second"))
    assert str(refused.value) == (f"generator_steps=1 but {last} has already trained 2 generator steps: generator_steps "
                                  "is the run's total length, not the steps to add (expected more than 2, e.g. "
                                  "generator_steps=3 for 1 more)")
    assert not (tmp_path / "second" / "checkpoints").exists()  # refused before anything trained or saved
    with caplog.at_level("WARNING", logger="gan"):
        _, objects = train(make_cfg(run + [f"ckpt_path={last}"], output_dir=tmp_path / "third"))
    assert objects["module"].generator_steps == 2
    assert f"{last} has already trained generator_steps=2 generator steps: nothing is left to train" in caplog.text
    assert "options that differ" not in caplog.text  # the same options (paths and the length left out)
    caplog.clear()
    longer = [o for o in run if not o.startswith("generator_steps=")] + ["generator_steps=3", "optimizer.generator.lr=0.01",
                                                                         f"ckpt_path={last}"]
    with caplog.at_level("WARNING", logger="gan"):
        _, objects = train(make_cfg(longer, output_dir=tmp_path / "fourth"))
    assert objects["module"].generator_steps == 3
    changed = [r.getMessage() for r in caplog.records if "options that differ" in r.getMessage()]
    old_lr = load_checkpoint(last)["run_config"]["optimizer"]["generator"]["lr"]
    assert changed == [f"resuming {last} with options that differ from its run (the run goes on with the new values): "
                       f"optimizer.generator.lr: {old_lr} -> 0.01"]


def test_a_job_without_cpu_threads_runs_on_the_process_count_and_a_resume_on_another_is_said(make_cfg, tmp_path, caplog,
                                                                                               monkeypatch):
    """In a multirun a job after one with cpu_threads kept that job's count (an audit); the count is in the checkpoint,
    and a resume on another one is not bit-identical, which a warning says. The tests' process runs on one thread
    (conftest), so its own count is taken to be 2 here, or a job keeping 1 would pass."""
    import train as train_module

    monkeypatch.setattr(train_module, "PROCESS_THREADS", 2)
    run = tiny_overrides("dcgan", "toy2d_ring", steps=2) + ["metrics=none", "presets=none"]
    before = torch.get_num_threads()
    try:
        train(make_cfg(run + ["cpu_threads=1"], output_dir=tmp_path / "one"))
        assert torch.get_num_threads() == 1
        train(make_cfg(run, output_dir=tmp_path / "default"))
        assert torch.get_num_threads() == 2  # the process's count, not the last job's 1
        last = tmp_path / "one" / "checkpoints" / "last.ckpt"
        longer = [o for o in run if not o.startswith("generator_steps=")] + ["generator_steps=3", f"ckpt_path={last}"]
        with caplog.at_level("WARNING", logger="gan"):
            train(make_cfg(longer + ["cpu_threads=2"], output_dir=tmp_path / "resumed"))
        said = [r.getMessage() for r in caplog.records if "CPU threads" in r.getMessage()]
        assert said == [f"{last} trained on 1 CPU threads, this run has 2: sums split across threads add in another "
                        "order, so it will not be bit-identical to an uninterrupted run; cpu_threads=1 resumes it exactly"]
    finally:
        torch.set_num_threads(before)


def test_a_resume_trains_with_the_optimizer_options_it_changes(make_cfg, tmp_path):
    """As the warning above says: Lightning restores the optimizers' param groups from the checkpoint, which kept the
    old values, so a changed lr or betas used to be dropped without a word (dcgan: no schedule sets them)."""
    run = tiny_overrides("dcgan", "toy2d_ring", steps=2) + ["metrics=none"]
    train(make_cfg(run, output_dir=tmp_path / "first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    old = load_checkpoint(last)
    longer = [o for o in run if not o.startswith("generator_steps=")] + [
        "generator_steps=3", f"ckpt_path={last}", "optimizer.generator.lr=0.01", "optimizer.discriminator.betas=[0.1,0.9]"]
    _, objects = train(make_cfg(longer, output_dir=tmp_path / "second"))
    generator, discriminator = (optimizer.param_groups[0] for optimizer in objects["trainer"].optimizers)
    assert generator["lr"] == 0.01 and discriminator["betas"] == (0.1, 0.9)  # torch's tuple, not the config's list
    # what the config did not change is the checkpoint's
    assert discriminator["lr"] == old["optimizer_states"][1]["param_groups"][0]["lr"]
    assert generator["betas"] == old["optimizer_states"][0]["param_groups"][0]["betas"]
    saved = load_checkpoint(tmp_path / "second" / "checkpoints" / "last.ckpt")["optimizer_states"]
    assert saved[0]["param_groups"][0]["lr"] == 0.01 and saved[1]["param_groups"][0]["betas"] == (0.1, 0.9)


def test_a_resume_with_another_optimizer_is_one_line(make_cfg, tmp_path):
    run = tiny_overrides("dcgan", "toy2d_ring", steps=2) + ["metrics=none"]
    train(make_cfg(run, output_dir=tmp_path / "first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    other = [o for o in run if not o.startswith("generator_steps=")] + ["generator_steps=3", "optimizer=rmsprop_wgan",
                                                                        f"ckpt_path={last}"]
    with pytest.raises(CheckpointError, match=rf"^cannot resume from {last}: its run trained the generator with "
                                              r"torch.optim.Adam, this run builds torch.optim.RMSprop \(optimizer.generator\), "
                                              "whose state it cannot take; resume with the optimizer it was trained with"):
        train(make_cfg(other, output_dir=tmp_path / "second"))
    assert not (tmp_path / "second" / "checkpoints").exists()


def test_a_new_run_refuses_a_folder_that_holds_another_runs_checkpoints(make_cfg, tmp_path):
    """Lightning wrote the new run's checkpoints beside the old ones (last-v1.ckpt), and last.ckpt, which the
    end-of-run hint, evaluate.py and ckpt_path=last read, stayed the other run's."""
    from gan.utils.errors import ConfigError

    run = tiny_overrides("gan", "toy2d_ring", steps=2) + ["metrics=none"]
    train(make_cfg(run, output_dir=tmp_path / "run"))
    folder = tmp_path / "run" / "checkpoints"
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    with pytest.raises(ConfigError, match=rf"^paths.output_dir={tmp_path / 'run'} already holds another run's checkpoints "
                                          rf"\(last.ckpt in {folder}\); expected a new run directory, or "
                                          "ckpt_path=last to continue that run$"):
        train(make_cfg(run, output_dir=tmp_path / "run"))
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before  # nothing written or replaced
    train(make_cfg(run, output_dir=tmp_path / "other"))
    longer_from_other = [o for o in run if not o.startswith("generator_steps=")] + [
        "generator_steps=3", f"ckpt_path={tmp_path / 'other' / 'checkpoints' / 'last.ckpt'}"]
    with pytest.raises(ConfigError, match="already holds another run's checkpoints"):  # a resume from elsewhere too
        train(make_cfg(longer_from_other, output_dir=tmp_path / "run"))
    longer = [o for o in run if not o.startswith("generator_steps=")] + ["generator_steps=3", "ckpt_path=last"]
    _, objects = train(make_cfg(longer, output_dir=tmp_path / "run"))  # continuing that run in place
    assert objects["module"].generator_steps == 3 and not list(folder.glob("*-v1.ckpt"))


def test_the_command_line_refuses_the_folder_before_hydra_writes_into_it(make_cfg, tmp_path, capsys):
    """Hydra writes a run's .hydra/ files and opens train.log before the task starts: train.py's own check came after
    the other run's config, overrides and log were overwritten (a walk-through of the README). The Hydra callback
    checks the job's folder first."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from gan.job import RunFolderCheck

    run = tiny_overrides("gan", "toy2d_ring", steps=2) + ["metrics=none"]
    train(make_cfg(run, output_dir=tmp_path / "run"))

    def on_run_start(*overrides: str) -> None:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
            config = compose("train", overrides=[*run, *overrides], return_hydra_config=True)
        GlobalHydra.instance().clear()
        assert "run_folder" in config.hydra.callbacks  # what Hydra would call
        RunFolderCheck().on_run_start(config=config)

    with pytest.raises(SystemExit) as exited:
        on_run_start(f"hydra.run.dir={tmp_path / 'run'}")
    assert exited.value.code == 2
    assert capsys.readouterr().err == (f"error: paths.output_dir={tmp_path / 'run'} already holds another run's "
                                       f"checkpoints (last.ckpt in {tmp_path / 'run' / 'checkpoints'}); expected a new "
                                       "run directory, or ckpt_path=last to continue that run\n")
    with pytest.raises(SystemExit):  # paths.output_dir given instead of Hydra's folder
        on_run_start(f"hydra.run.dir={tmp_path / 'elsewhere'}", f"paths.output_dir={tmp_path / 'run'}")
    on_run_start(f"hydra.run.dir={tmp_path / 'run'}", "ckpt_path=last", "generator_steps=3")  # continuing it: passes
    before = HydraConfig.instance().cfg
    on_run_start(f"hydra.run.dir={tmp_path / 'new'}")
    assert not (tmp_path / "new").exists() and HydraConfig.instance().cfg is before  # nothing made, nothing left set
    with pytest.MonkeyPatch.context() as patch:  # a DDP rank past 0 starts into the folder rank 0 checked
        patch.setenv("LOCAL_RANK", "1")
        on_run_start(f"hydra.run.dir={tmp_path / 'run'}")


@pytest.mark.slow
def test_a_refused_command_line_leaves_the_other_runs_config_and_log_as_they_were(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "train.py", *tiny_overrides("gan", "toy2d_ring", steps=2), "metrics=none",
               f"paths.data_dir={tmp_path / 'data'}", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    written = {path: path.read_bytes() for path in [run_dir / "train.log", *(run_dir / ".hydra").iterdir()]}
    assert len(written) == 4
    again = subprocess.run([*command, "generator_steps=4", "model.ema_decay=0.9"], cwd=PROJECT_ROOT, capture_output=True,
                           text=True, timeout=300, env=env)
    assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr
    assert "already holds another run's checkpoints" in again.stderr
    assert {path: path.read_bytes() for path in written} == written


def test_options_changed_since_leaves_out_what_a_resume_changes_anyway():
    from gan.utils.checkpoint import options_changed_since

    saved = {"generator_steps": 10, "seed": 1, "cpu_threads": 2, "paths": {"output_dir": "/runs/a"},
             "callbacks": {"grid": {"dirpath": "/runs/a/samples", "every": 5}},
             "model": {"instance_noise_std": 0.0, "instance_noise_steps": 10, "n_critic": 5}}
    now = {"generator_steps": 20, "seed": 2, "cpu_threads": 1, "paths": {"output_dir": "/runs/b"},
           "callbacks": {"grid": {"dirpath": "/runs/b/samples", "every": 5}},
           "model": {"instance_noise_std": 0.0, "instance_noise_steps": 20, "n_critic": 5}}
    assert options_changed_since(saved, now) == []  # length, seed, threads, run paths, inert instance-noise length
    now["model"] = {"instance_noise_std": 0.1, "instance_noise_steps": 20, "n_critic": 1, "extra": True}
    assert options_changed_since(saved, now) == ["model.extra: unset -> True", "model.instance_noise_std: 0.0 -> 0.1",
                                                 "model.instance_noise_steps: 10 -> 20", "model.n_critic: 5 -> 1"]
    assert options_changed_since(saved, now, limit=2) == ["model.extra: unset -> True",
                                                          "model.instance_noise_std: 0.0 -> 0.1", "and 2 more"]


def test_resumable_checkpoint_check_counts_and_names_the_mismatch():
    from gan.utils.checkpoint import check_resumable

    saved = {"state_dict": {"generator.w": torch.zeros(4, 2), "discriminator.w": torch.zeros(3), "discriminator.old": torch.zeros(1)},
             "run_config": {"model": {"generator": {"_target_": "A", "width": 4}, "discriminator": {"width": 3}},
                            "data": {"sample_shape": [2]}}, "optimizer_states": [], "loops": {}, "gan_counters": {}}
    check_resumable(saved, "x.ckpt", dict(saved["state_dict"]), saved["run_config"])  # the same networks: nothing to say
    built = {"generator.w": torch.zeros(8, 2), "discriminator.w": torch.zeros(3), "discriminator.new": torch.zeros(1)}
    config = {"model": {"generator": {"_target_": "B", "width": 8}, "discriminator": {"width": 3}}, "data": {"sample_shape": [2]}}
    with pytest.raises(CheckpointError) as refused:
        check_resumable(saved, "x.ckpt", built, config)
    assert str(refused.value) == (
        "cannot resume from x.ckpt: its weights do not fit the networks this run builds (tensors: 1 missing, 1 unexpected, "
        "1 of another shape; e.g. generator.w is [4, 2] there, [8, 2] here); the checkpoint's run had "
        "model.generator._target_=A, model.generator.width=4; resume with the options it was trained with, or start a new "
        "run without ckpt_path")


@pytest.mark.parametrize("added", ["augment", "ema", "lecam"])
def test_adding_or_dropping_a_stateful_part_on_resume_names_its_option(added):
    """Resuming with augment=ada, model.ema_decay or a LeCam penalty the run did not have (or without one it had) said
    its weights "do not fit the networks", naming no option: the networks did fit (an audit)."""
    from gan.augment import AdaptiveAugment, DiffAugment
    from gan.losses import LeCamPenalty
    from gan.utils.checkpoint import check_resumable
    from tests.test_module import make_module

    part = {"augment": dict(augment=AdaptiveAugment()), "ema": dict(ema_decay=0.99),
            "lecam": dict(penalties={"lecam": LeCamPenalty()})}[added]
    option = {"augment": "model.augment", "ema": "model.ema_decay", "lecam": "model.penalties.lecam"}[added]
    plain, extended = make_module().state_dict(), make_module(**part).state_dict()
    saved = {"state_dict": plain, "optimizer_states": [], "loops": {}, "gan_counters": {}}
    with pytest.raises(CheckpointError, match=rf"^cannot resume from x\.ckpt: its run kept no state for {re.escape(option)}, "
                                              r"which this run does \(ADA's probability, LeCam's anchors, the EMA generator"):
        check_resumable(saved, "x.ckpt", extended, None)
    with pytest.raises(CheckpointError, match=rf"^cannot resume from x\.ckpt: its run kept a state for {re.escape(option)}, "
                                              r"which this run has none of .*; resume with the options it was trained with"):
        check_resumable({**saved, "state_dict": extended}, "x.ckpt", plain, None)
    if added == "augment":  # ADA's state, and DiffAugment (which keeps none) now
        with pytest.raises(CheckpointError, match=r"its run kept a state for model\.augment, which this run has none of"):
            check_resumable({**saved, "state_dict": extended}, "x.ckpt", make_module(augment=DiffAugment()).state_dict(), None)
    # other networks as well: they are what to name (the stateful part's message blamed the EMA for a whole other model)
    from gan.nets import DCGANDiscriminator
    from tests.test_module import SHAPE

    wider = make_module(discriminator=DCGANDiscriminator(SHAPE, width=8), **part).state_dict()
    with pytest.raises(CheckpointError, match=r"its weights do not fit the networks this run builds"):
        check_resumable(saved, "x.ckpt", wider, None)


@pytest.mark.slow
def test_checkpoints_a_resume_or_load_generator_cannot_use_are_one_line(make_cfg, tmp_path):
    """Found by an audit of the Python API, each on an edited checkpoint: weights only (save_weights_only) was
    Lightning's KeyError traceback; NaN weights trained on into "training diverged" (or load_generator drew NaN);
    an optimizer state of another shape killed the process with a segmentation fault and no message."""
    import gan
    from gan.utils.checkpoint import load_generator

    run = tiny_overrides("dcgan", "digits", steps=2) + ["metrics=none"]
    train(make_cfg(run, output_dir=tmp_path / "run"))
    good = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)

    def edited(name, change):
        checkpoint = {key: value for key, value in good.items()}
        checkpoint["state_dict"] = dict(good["state_dict"])
        change(checkpoint)
        torch.save(checkpoint, tmp_path / name)
        return tmp_path / name

    def weights_only(c):
        for key in ("optimizer_states", "loops", "lr_schedulers"):
            c.pop(key, None)

    def nan_weight(c):
        c["state_dict"]["generator.net.0.weight"] = torch.full_like(c["state_dict"]["generator.net.0.weight"], float("nan"))

    def reshaped_moment(c):
        states = [dict(state) for state in c["optimizer_states"]]
        states[1] = {**states[1], "state": {**states[1]["state"], 0: {**states[1]["state"][0], "exp_avg": torch.zeros(2)}}}
        c["optimizer_states"] = states

    cases = {"weights_only.ckpt": (weights_only, r"it has no optimizer_states, loops; it holds the weights only \(save_weights_only\)"),
             "nan.ckpt": (nan_weight, r"1 of its weight tensors hold NaN or Inf \(e.g. generator.net.0.weight\)"),
             "moment.ckpt": (reshaped_moment, r"its discriminator optimizer state does not fit this run's parameters "
                                              r"\(parameter 0: exp_avg is \[2\] there, the parameter \[.*\] here\)")}
    for name, (change, message) in cases.items():
        path = edited(name, change)
        with pytest.raises(CheckpointError, match=rf"^cannot resume from {path}: {message}"):
            train(make_cfg(run + ["generator_steps=4", f"ckpt_path={path}"], output_dir=tmp_path / f"resumed_{name}"))
    with pytest.raises(CheckpointError, match=r"1 of its generator's weight tensors hold NaN or Inf \(e.g. net.0.weight\)"):
        load_generator(tmp_path / "nan.ckpt", use_ema=False)
    assert gan.load_generator(tmp_path / "weights_only.ckpt").sample(2).shape == (2, 1, 28, 28)  # its weights still load


# ------------------------------------------------------------------------------------------ atomic writes
def fake_trainer(write):
    return SimpleNamespace(save_checkpoint=write, is_global_zero=True, global_step=7, loggers=[])


def test_checkpoint_is_replaced_atomically_and_a_failed_save_keeps_the_previous_one(tmp_path):
    callback = GANModelCheckpoint(dirpath=tmp_path)
    path = tmp_path / "last.ckpt"

    def good(filepath, weights_only=False):
        assert filepath != str(path), "must write a temporary file first"
        with open(filepath, "wb") as handle:
            handle.write(b"complete checkpoint")

    callback._save_checkpoint(fake_trainer(good), str(path))
    assert path.read_bytes() == b"complete checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # moved into place, no temporary left behind
    assert callback._last_checkpoint_saved == str(path) and callback._last_global_step_saved == 7

    def crash_midway(error):
        def write(filepath, weights_only=False):
            with open(filepath, "wb") as handle:
                handle.write(b"half a chec")
            raise error
        return write

    with pytest.raises(OSError, match="No space left"):
        callback._save_checkpoint(fake_trainer(crash_midway(OSError("No space left on device"))), str(path))
    assert path.read_bytes() == b"complete checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]

    # the error the OS raises (with its errno): one line naming the checkpoint and the free space
    with pytest.raises(CheckpointError) as error:
        callback._save_checkpoint(fake_trainer(crash_midway(OSError(errno.ENOSPC, "No space left on device"))), str(path))
    message = str(error.value)
    assert message.startswith(f"no space left to save checkpoint {path} (") and "\n" not in message
    assert f" free in {tmp_path}" in message and message.endswith("the previous checkpoints are intact")
    assert path.read_bytes() == b"complete checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]



def test_an_error_raised_while_handling_a_full_disk_is_still_said_as_a_full_disk(tmp_path):
    """torch's writer raises its own error while handling the OS's ENOSPC (an implicit ``__context__``, no
    ``raise ... from``): the full disk is found down the context chain too, not only the causes (a mutation audit)."""
    from gan.callbacks.checkpoint import is_out_of_space

    def write(filepath, weights_only=False):
        with open(filepath, "wb") as handle:
            handle.write(b"half a chec")
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("PytorchStreamWriter failed writing file data/0")  # its context: the OSError

    try:
        write(str(tmp_path / "probe"))
    except RuntimeError as error:
        assert error.__cause__ is None and is_out_of_space(error)
    assert not is_out_of_space(RuntimeError("no OSError behind it"))
    callback = GANModelCheckpoint(dirpath=tmp_path)
    path = tmp_path / "last.ckpt"
    with pytest.raises(CheckpointError, match=rf"^no space left to save checkpoint {re.escape(str(path))} \(") as error:
        callback._save_checkpoint(fake_trainer(write), str(path))
    assert error.value.__cause__ is None and "\n" not in str(error.value)
    assert not path.exists() and not (tmp_path / "last.ckpt.tmp").exists()

# ---------------------------------------------------------------------------------------------- signals
@pytest.mark.slow
def test_signals_save_a_checkpoint_before_exit(tmp_path):
    """SIGTERM and SIGINT (run side by side) each stop a long run with a resumable last.ckpt; so does a SIGTERM sent
    to the whole process group of a run with DataLoader workers (timeout, scancel, docker stop), which killed the
    workers first: a traceback, status 1 and no checkpoint (an audit)."""
    runs = {}
    for name, signum, extra in (("SIGTERM", signal.SIGTERM, []), ("SIGINT", signal.SIGINT, []),
                                ("SIGTERM_group", signal.SIGTERM, ["data.num_workers=2"])):
        out = tmp_path / name
        command = [sys.executable, "train.py", *tiny_overrides("gan", "toy2d_ring", steps=100_000),
                   "metrics=none", "callbacks.sample_grid=null", f"hydra.run.dir={out}",
                   f"paths.data_dir={tmp_path / 'data'}", "callbacks.model_checkpoint.every_n_train_steps=20", *extra]
        log = open(tmp_path / f"{name}.log", "w")  # a file, not a pipe nobody reads while it runs
        runs[name] = (signum, out, log, subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                                         env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True))
    for name, (signum, out, log, process) in runs.items():
        deadline = time.time() + 120
        while not list((out / "checkpoints").glob("gstep_*.ckpt")) and time.time() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert process.poll() is None, open(log.name).read()[-2000:]
        if name.endswith("_group"):
            os.killpg(process.pid, signum)  # the run and its loader workers
        else:
            process.send_signal(signum)
    for name, (signum, out, log, process) in runs.items():
        process.wait(timeout=60)
        log.close()
        assert process.returncode == 128 + signum, open(log.name).read()[-2000:]
        checkpoint = load_checkpoint(out / "checkpoints" / "last.ckpt")
        generator_steps = checkpoint["gan_counters"]["generator_steps"]
        assert 10 <= generator_steps < 100_000
        assert checkpoint["global_step"] == 2 * generator_steps  # saved between steps, never inside one
        assert "ResumeState" in checkpoint["callbacks"]
        said = open(log.name).read()  # the signal by name, the unit the save waits for, and how to continue
        assert f"Received {signal.Signals(signum).name} ({signum}): saving a checkpoint at the end of this GAN iteration" in said
        assert f"after {signal.Signals(signum).name} ({signum}); exiting (continue the run with ckpt_path=" in said


class NonFiniteWeightsAndSignalAt(pl.Callback):
    """At generator step ``step``: a generator weight turns NaN and SIGINT arrives (its handler called as the signal
    would, so the test stays in one process)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if pl_module.generator_steps == self.step:
            with torch.no_grad():
                next(pl_module.generator.parameters()).fill_(float("nan"))
            trainer.checkpoint_callback._on_signal(signal.SIGINT, None)


def test_a_signal_whose_save_is_refused_says_so_and_keeps_the_last_checkpoint(make_cfg, tmp_path, caplog):
    """Weights that are not finite when a signal's save comes are not saved: the run exits with the signal's status,
    says which checkpoint it keeps, and that checkpoint is the last healthy one."""
    cfg = make_cfg(tiny_overrides("dcgan", "toy2d_ring", steps=100) + [
        "metrics=none", "callbacks.sample_grid=null", "callbacks.gan_health=null", "model.iterations_per_batch=1",
        "callbacks.model_checkpoint.every_n_train_steps=20",
        "+callbacks.nan_and_signal._target_=tests.test_resume.NonFiniteWeightsAndSignalAt",
        "+callbacks.nan_and_signal.step=15"])
    with caplog.at_level("WARNING", logger="gan"), pytest.raises(SystemExit) as stopped:
        train(cfg)
    assert stopped.value.code == 128 + signal.SIGINT
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    said = [r.getMessage() for r in caplog.records]
    assert "Not saving a checkpoint at generator step 16: generator.net.0.weight holds NaN/Inf values; " \
           "the saved checkpoints are kept as they are" in said, said
    assert f"Exiting after SIGINT (2) without a save at this step (see the warning above); the last checkpoint " \
           f"saved is {last}" in said, said
    assert not any(m.startswith("Saved ") for m in said)
    checkpoint = load_checkpoint(last)  # the save at Lightning's step 20 (generator step 10), finite
    assert checkpoint["gan_counters"]["generator_steps"] == 10
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


# ---------------------------------------------------------------------------------------------- sampler
def test_sampler_streams_seeded_passes_shares_them_between_ranks_and_resumes_anywhere():
    from itertools import islice

    from torch.utils.data import DistributedSampler

    from gan.data.sampler import ResumableSampler

    data = list(range(10))

    def one_pass(epoch, rank=0, world=1):
        reference = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=3)
        reference.set_epoch(epoch)
        return list(reference)

    stream = ResumableSampler(data, seed=3)
    assert list(islice(iter(stream), 25)) == one_pass(0) + one_pass(1) + one_pass(2)[:5]
    stream.set_epoch(7)  # Lightning's epoch number does not move the stream
    assert list(islice(iter(stream), 10)) == one_pass(0)
    stream.resume_at(batches_done=3, batch_size=4)  # 12 samples in: 2 into pass 1
    assert list(islice(iter(stream), 10)) == one_pass(1)[2:] + one_pass(2)[:2]

    rank1 = ResumableSampler(data, seed=3)
    rank1.num_replicas, rank1.rank, rank1.num_samples, rank1.total_size = 2, 1, 5, 10
    assert list(islice(iter(rank1), 7)) == one_pass(0, rank=1, world=2) + one_pass(1, rank=1, world=2)[:2]

    single_pass = ResumableSampler(data, seed=3, endless=False)
    assert len(single_pass) == 10 and list(single_pass) == one_pass(0)
    with pytest.raises(TypeError, match="no length"):
        len(stream)


# ------------------------------------------------------------------------------------------ RNG states
def draws() -> tuple:
    import random

    import numpy as np

    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_the_checked_copy_is_served_once_for_its_file_and_everything_else_reaches_the_strategy_s_io(tmp_path):
    import pickle

    from lightning.fabric.plugins import TorchCheckpointIO

    from gan.utils.checkpoint import ServeCheckedCheckpoint

    checked, other = tmp_path / "last.ckpt", tmp_path / "other.ckpt"
    torch.save({"on_disk": 1}, checked)
    (tmp_path / "runs").mkdir()
    io = ServeCheckedCheckpoint(TorchCheckpointIO(), checked, {"checked": 1})
    # spawned DDP processes receive the strategy, and so this IO, pickled (a __getattr__ delegation recursed there)
    io = pickle.loads(pickle.dumps(io))
    assert io.load_checkpoint(str(tmp_path / "runs" / ".." / "last.ckpt")) == {"checked": 1}  # the file, spelt otherwise
    assert io.load_checkpoint(checked) == {"on_disk": 1}  # a second load (none in fit) reads the file
    io.save_checkpoint({"saved": 2}, other)
    assert io.load_checkpoint(other) == {"saved": 2}
    io.remove_checkpoint(other)
    assert not other.exists()


@pytest.mark.parametrize("as_lists", [False, True], ids=["tensors", "lists_of_older_checkpoints"])
def test_rng_states_survive_a_weights_only_checkpoint(tmp_path, as_lists):
    """Python's, numpy's and torch's generators continue where they were saved, through a file read with
    weights_only=True; the state is a few tensors (one object each to pickle), and the lists older checkpoints
    hold still load."""
    import io

    from lightning.fabric.utilities.seed import _set_rng_states

    from gan.callbacks.resume import ResumeState

    torch.manual_seed(3)
    saved = ResumeState().state_dict()
    expected = draws()
    (states,) = saved["rng_per_rank"]
    assert isinstance(states["python"][1], torch.Tensor) and isinstance(states["numpy"][1], torch.Tensor)
    if as_lists:  # what checkpoints written before 2026-12-05 hold
        kind, keys, *rest = states["numpy"]
        states["numpy"] = (kind, keys.tolist(), *rest)
        version, internal, gauss = states["python"]
        states["python"] = (version, tuple(internal.tolist()), gauss)
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    buffer.seek(0)
    restored = ResumeState()
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    draws()  # the generators move on ...
    _set_rng_states(restored._rng_to_restore)  # ... and are put back as on_train_start does
    assert draws() == expected


def test_a_checkpoints_folder_given_as_ckpt_path_names_a_file_in_it(tmp_path):
    """It said `checkpoint not found: .../checkpoints`, of a folder that exists."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "gstep_0000005.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=rf"^checkpoint {folder} is a folder; expected a checkpoint file in it, e.g. "
                                              rf"ckpt_path={folder / 'gstep_0000005.ckpt'}$"):
        load_checkpoint(folder)
    (folder / "last.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=rf"e.g. ckpt_path={folder / 'last.ckpt'}$"):
        load_checkpoint(folder)
    # the run's folder: the file is in its checkpoints/ (the hint named {run}/last.ckpt, which is not there)
    with pytest.raises(CheckpointError, match=rf"^checkpoint {tmp_path} is a folder; expected a checkpoint file in it, "
                                              rf"e.g. ckpt_path={folder / 'last.ckpt'}$"):
        load_checkpoint(tmp_path)



def test_a_folder_s_example_checkpoint_is_its_last_ckpt_even_when_another_sorts_first(tmp_path):
    """best.ckpt sorts before last.ckpt: the hint still names last.ckpt, the run's newest state (a mutation audit: it
    named the first file by name)."""
    from gan.utils.checkpoint import example_checkpoint

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name in ("best.ckpt", "gstep_0000002.ckpt"):
        (folder / name).write_bytes(b"")
    assert example_checkpoint(folder) == folder / "best.ckpt"  # no last.ckpt: the first by name
    (folder / "last.ckpt").write_bytes(b"")
    assert example_checkpoint(folder) == folder / "last.ckpt"
    assert example_checkpoint(tmp_path) == folder / "last.ckpt"  # the run's folder: in its checkpoints/


def test_a_checkpoint_missing_any_part_a_resume_restores_is_refused_naming_it(make_cfg, tmp_path):
    """Each of optimizer_states, loops and gan_counters (a checkpoint without the GAN counters resumed at generator
    step 0 with trained weights: a mutation audit dropped it from the keys checked)."""
    from gan.utils.checkpoint import check_resumable

    train(make_cfg(tiny_overrides("gan", "toy2d_ring", steps=1) + ["metrics=none"]))
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    saved = load_checkpoint(path)
    state, config = dict(saved["state_dict"]), saved["run_config"]
    check_resumable(saved, path, state, config)  # the full checkpoint: nothing to say
    for key in ("optimizer_states", "loops", "gan_counters"):
        partial = {k: v for k, v in saved.items() if k != key}
        with pytest.raises(CheckpointError, match=rf"^cannot resume from {re.escape(str(path))}: it has no {key}[;,]"):
            check_resumable(partial, path, state, config)

def test_a_resume_that_changes_n_critic_says_the_checkpoint_callbacks_start_anew(make_cfg, tmp_path, caplog):
    """Lightning keys a checkpoint callback's state by its interval in optimizer steps, which n_critic changes."""
    run = tiny_overrides("dcgan", "toy2d_ring", steps=2) + ["metrics=none"]
    train(make_cfg(run, output_dir=tmp_path / "first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    longer = [o for o in run if not o.startswith("generator_steps=")] + ["generator_steps=3", f"ckpt_path={last}"]
    with caplog.at_level("WARNING", logger="gan"):
        train(make_cfg(longer + ["model.n_critic=2"], output_dir=tmp_path / "second"))
    said = [r.getMessage() for r in caplog.records if "options that differ" in r.getMessage()]
    assert len(said) == 1 and "model.n_critic: 1 -> 2" in said[0]
    [anew] = [r.getMessage() for r in caplog.records if "is not restored" in r.getMessage()]
    # the periodic checkpoint callback's state (no monitor), keyed by its interval in optimizer steps
    assert re.fullmatch(rf"resuming {re.escape(str(last))}: the saved state of GANModelCheckpoint is not restored: .*, so "
                        r"the best score behind best.ckpt and the interval counts start anew", anew), anew
    caplog.clear()
    with caplog.at_level("WARNING", logger="gan"):  # another change: every state restored
        train(make_cfg(longer + ["optimizer.generator.lr=0.01"], output_dir=tmp_path / "third"))
    assert not any("is not restored" in r.getMessage() for r in caplog.records)


def test_a_resume_that_changes_the_metrics_interval_names_the_best_checkpoint_s_state_left_behind(make_cfg, tmp_path,
                                                                                                  caplog):
    """The best checkpoint's callback is keyed by the metrics' interval; Lightning's own warning asked to "add the
    following callbacks" (a README walk-through)."""
    import warnings

    from gan.utils.console import quiet_third_party_notices

    run = tiny_overrides("gan", "toy2d_ring", steps=4) + ["metrics.every_n_generator_steps=2"]
    train(make_cfg(run, output_dir=tmp_path / "first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    longer = [o for o in run if not o.startswith(("generator_steps=", "metrics.every"))] + [
        "generator_steps=6", "metrics.every_n_generator_steps=3", f"ckpt_path={last}"]
    with caplog.at_level("WARNING", logger="gan"), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_third_party_notices()
        train(make_cfg(longer, output_dir=tmp_path / "second"))
    [anew] = [r.getMessage() for r in caplog.records if "is not restored" in r.getMessage()]
    assert "the saved state of GANModelCheckpoint (monitor val/mode_coverage/modes) is not restored" in anew
    assert not [w for w in seen if "callbacks used to create the checkpoint" in str(w.message)]


def test_a_wandb_id_given_on_resume_is_kept(make_cfg):
    """(a mutation audit) the checkpoint's W&B run id overwrote an explicit logger.wandb.id."""
    from train import continue_wandb_run

    cfg = make_cfg(tiny_overrides("gan", "toy2d_ring") + ["logger=wandb", "logger.wandb.id=mine"])
    continue_wandb_run(cfg, {"wandb_run_id": "theirs"})
    assert cfg.logger.wandb.id == "mine"
    cfg = make_cfg(tiny_overrides("gan", "toy2d_ring") + ["logger=wandb"])
    continue_wandb_run(cfg, {"wandb_run_id": "theirs"})
    assert cfg.logger.wandb.id == "theirs"


def test_ckpt_path_last_says_which_checkpoint_it_resumes(make_cfg, tmp_path, caplog):
    """(a mutation audit) the "Resuming from" line was left out for ckpt_path=last (the resolved path differs)."""
    from train import resume_checkpoint

    cfg = make_cfg(tiny_overrides("gan", "toy2d_ring") + ["ckpt_path=last"])
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"")
    with caplog.at_level("INFO", logger="gan"):
        assert resume_checkpoint(cfg) == str(last)
    assert f"Resuming from {last}" in [r.getMessage() for r in caplog.records]
