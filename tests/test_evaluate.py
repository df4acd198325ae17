"""evaluate.py end to end on a short run's checkpoint, on 2D data, on a folder of images, and from the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaluate import evaluate
from gan.utils.config import PROJECT_ROOT
from tests.conftest import tiny_overrides
from train import train

FAST = ["metrics.every_n_generator_steps=2", "metrics.num_samples=64", "metrics.num_real=256"]


@pytest.fixture
def digits_run(make_cfg, tmp_path):
    metrics, objects = train(make_cfg(tiny_overrides("dcgan", steps=4) + FAST, output_dir=tmp_path / "run"))
    return tmp_path / "run", metrics


def test_evaluate_checkpoint_writes_report_pictures_and_matches_training_score(make_cfg, tmp_path, digits_run):
    run, train_metrics = digits_run
    overrides = [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "num_samples=64", "metrics.num_real=256",
                 "interpolation.rows=3", "interpolation.steps=5"]
    report = evaluate(make_cfg(overrides, config_name="evaluate", output_dir=tmp_path / "eval"))
    out = tmp_path / "eval"
    assert json.loads((out / "report.json").read_text())["values"] == report["values"]
    # no metrics= given: the run's own selection, same protocol, same fixed codes: the training-time value
    assert report["values"]["fid_digits"] == pytest.approx(train_metrics["val/fid_digits"], rel=1e-6)
    assert report["protocol"]["metrics"]["fid_digits"]["num_fake"] == 64
    assert report["protocol"]["reference"]["num_real"] == 256
    assert report["checkpoint"]["generator_steps"] == 4 and report["checkpoint"]["path"].endswith("last.ckpt")
    assert report["config"]["num_samples"] == 64 and report["run_config"]["model"]["_target_"] == "gan.module.GANModule"
    from PIL import Image

    with Image.open(out / "interpolation.png") as strip:
        assert strip.size == (5 * 30 + 2, 3 * 30 + 2)  # 5 steps x 3 rows of 28x28 with 2-pixel padding
    assert (out / "samples.png").exists()


def test_evaluate_toy_run_reports_mode_coverage_and_scatter(make_cfg, tmp_path):
    train(make_cfg(tiny_overrides("gan", "toy2d_ring", steps=2), output_dir=tmp_path / "run"))
    report = evaluate(make_cfg([f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}"], config_name="evaluate",
                               output_dir=tmp_path / "eval"))
    assert set(report["values"]) == {"mode_coverage/modes", "mode_coverage/high_quality", "mode_coverage/reverse_kl"}
    assert 0 <= report["values"]["mode_coverage/modes"] <= 8
    assert report["protocol"]["metrics"]["mode_coverage"]["num_fake"] == 2500  # PacGAN's count, whatever num_samples
    assert (tmp_path / "eval" / "samples.png").exists() and "interpolation" not in report["pictures"]


def test_fake_folder_is_scored_against_a_dataset(make_cfg, tmp_path, data_dir):
    import torch

    from gan.data.digits import load_digits_array, to_unit_range
    from tests.metrics.conftest import write_folder

    images, _ = load_digits_array(data_dir)
    real_folder = write_folder(to_unit_range(images[1::7][:150]), tmp_path / "real_like")
    noise_folder = write_folder(torch.rand(150, 1, 28, 28) * 2 - 1, tmp_path / "noise")
    scores = {}
    for folder in (real_folder, noise_folder):
        cfg = make_cfg([f"fake_path={folder}", "data=digits", "metrics=[fid_digits]", "metrics.num_real=1000"],
                       config_name="evaluate", output_dir=tmp_path / f"eval_{folder.name}")
        report = evaluate(cfg)
        assert report["fake_images"] == 150 and report["protocol"]["metrics"]["fid_digits"]["num_fake"] == 150
        scores[folder.name] = report["values"]["fid_digits"]
    assert scores["real_like"] < scores["noise"] / 2


def test_evaluate_needs_a_checkpoint_or_a_folder_with_data(make_cfg, tmp_path):
    with pytest.raises(ValueError, match="needs ckpt_path="):
        evaluate(make_cfg([], config_name="evaluate"))
    with pytest.raises(ValueError, match=r"add data=<name>"):
        evaluate(make_cfg([f"fake_path={tmp_path}"], config_name="evaluate"))


@pytest.mark.slow
def test_cli_takes_a_metric_list(tmp_path, digits_run, data_dir):
    run, _ = digits_run
    command = [sys.executable, "evaluate.py", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "metrics=[fid_digits]",
               "num_samples=32", f"paths.data_dir={data_dir}", f"hydra.run.dir={tmp_path / 'cli'}", "interpolation.rows=0"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "cli" / "report.json").read_text())
    assert list(report["values"]) == ["fid_digits"] and report["protocol"]["metrics"]["fid_digits"]["num_fake"] == 32


def test_several_checkpoints_and_seeds_give_runs_and_a_t_interval_per_metric(make_cfg, tmp_path, data_dir):
    from gan.metrics.summary import summarize
    from gan.utils.errors import CheckpointError

    multirun = tmp_path / "multirun"
    for job, seed in enumerate((0, 1)):  # the layout of `train.py -m seed=0,1`: one directory per job
        train(make_cfg(tiny_overrides("dcgan", steps=2) + ["metrics=none", f"seed={seed}"], output_dir=multirun / str(job)))
    protocol = ["num_samples=64", "metrics.num_real=256", "metrics=[fid_digits]"]
    report = evaluate(make_cfg([f"ckpt_path={multirun}", "seeds=[0,1]", *protocol], config_name="evaluate",
                               output_dir=tmp_path / "eval"))
    runs = report["runs"]
    assert [(Path(run["checkpoint"]["path"]).parts[-3], run["latent_seed"]) for run in runs] == \
        [("0", 0), ("0", 1), ("1", 0), ("1", 1)]
    values = [run["values"]["fid_digits"] for run in runs]
    assert len(set(values)) == 4  # other weights, other latent codes: other values
    assert report["summary"]["fid_digits"] == summarize(values)
    assert "values" not in report and "pictures" not in report
    # each run is what a single evaluation of that checkpoint at that latent seed gives (same real samples)
    single = evaluate(make_cfg([f"ckpt_path={multirun / '1' / 'checkpoints' / 'last.ckpt'}", "seeds=[1]", *protocol],
                               config_name="evaluate", output_dir=tmp_path / "single"))
    assert single["values"]["fid_digits"] == pytest.approx(values[3], rel=1e-9)
    assert single["protocol"]["latent_seed"] == 1 and single["protocol"]["reference"]["seed"] == 0

    by_glob = evaluate(make_cfg([f"ckpt_path={multirun}/*/checkpoints/last.ckpt", *protocol], config_name="evaluate",
                                output_dir=tmp_path / "glob"))
    assert [run["values"]["fid_digits"] for run in by_glob["runs"]] == [values[0], values[2]]
    with pytest.raises(CheckpointError, match=r"ckpt_path=.*/nothing/\*.ckpt matches no checkpoint"):
        evaluate(make_cfg([f"ckpt_path={tmp_path}/nothing/*.ckpt"], config_name="evaluate"))


SIGINT_CHILD = """
import sys, time, torch
from evaluate import second_interrupt_aborts
torch.set_num_threads(1)
rotation = torch.linalg.qr(torch.randn(2048, 2048, dtype=torch.float64))[0]  # powers stay bounded: no overflow
with second_interrupt_aborts():
    print("started", flush=True)
    torch.linalg.matrix_power(rotation, 2 ** 60)  # one native call of 60 products: ~25 s on one core here
    print("finished", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_second_ctrl_c_aborts_an_evaluation_stuck_in_a_long_native_call(tmp_path):
    import signal
    import time

    child = subprocess.Popen([sys.executable, "-c", SIGINT_CHILD], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert child.stdout.readline().strip() == "started"
        time.sleep(0.5)
        child.send_signal(signal.SIGINT)  # Python delivers it only after matrix_power returns ...
        time.sleep(0.5)
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)  # ... this one ends the process at once
        returncode = child.wait(timeout=60)
        waited = time.monotonic() - sent
    finally:
        child.kill()
    out, err = child.communicate()
    assert returncode == 130 and "finished" not in out, err[-2000:]
    assert waited < 3, f"the second Ctrl+C took {waited:.1f} s to end the process"
    assert "Ctrl+C again to abort at once" in err and "Aborted" in err
