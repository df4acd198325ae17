"""evaluate.py end to end on a short run's checkpoint, on 2D data, on a folder of images, and from the CLI."""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from evaluate import evaluate
from gan.metrics import MetricSuite
from gan.utils.config import PROJECT_ROOT
from gan.utils.errors import CheckpointError, ConfigError, DataError
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
    with Image.open(out / "nearest.png") as nearest:  # 8 fakes, each with its 7 nearest reals
        assert nearest.size == (8 * 30 + 2, 8 * 30 + 2)


def test_nearest_reals_are_each_fakes_nearest_first_over_chunks():
    from gan.visualize import nearest_reals

    generator = torch.Generator().manual_seed(0)
    reals = torch.rand(50, 1, 4, 4, generator=generator) * 2 - 1
    fakes = torch.cat([reals[[7, 21]], reals[[3]] + 0.01, torch.rand(1, 1, 4, 4, generator=generator)])  # copies, near copy
    nearest = nearest_reals(fakes, reals.split(8), k=4)  # chunks of 8: the running top-k across chunk borders
    assert nearest[:3, 0].tolist() == [7, 21, 3]
    for fake, row in zip(fakes, nearest):
        distances = (reals[row] - fake).flatten(1).norm(dim=1)
        assert torch.all(distances[1:] >= distances[:-1])  # nearest first
        assert torch.allclose(distances, (reals - fake).flatten(1).norm(dim=1).sort().values[:4], atol=1e-6)  # none left out
    assert torch.equal(nearest, nearest_reals(fakes, [reals], k=4))  # the same in one chunk


def test_evaluate_toy_run_reports_mode_coverage_and_scatter(make_cfg, tmp_path, monkeypatch):
    import evaluate as evaluate_module

    train(make_cfg(tiny_overrides("gan", "toy2d_ring", steps=2), output_dir=tmp_path / "run"))
    titles = []
    real_save = evaluate_module.save_samples
    monkeypatch.setattr(evaluate_module, "save_samples", lambda *a, title=None, **k: titles.append(title) or real_save(*a, title=title, **k))
    # the run's folder, not the file (every run's last.ckpt) or the folder ckpt_path names (an audit)
    report = evaluate(make_cfg([f"ckpt_path={tmp_path / 'run'}"], config_name="evaluate", output_dir=tmp_path / "eval"))
    assert report["checkpoint"]["ema_weights"]  # the toy recipe keeps an EMA generator, which is what is drawn
    assert titles == ["run/last.ckpt: EMA generator at generator step 2"]
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

    # fid_inf's explicit counts above the folder's 150 images are refused before any feature is extracted (the
    # line came after the folder's and the reals' extraction)
    from gan.metrics import features

    extracted = []
    original = features.DigitFeatures.__call__
    features.DigitFeatures.__call__ = lambda self, images: extracted.append(len(images)) or original(self, images)
    try:
        cfg = make_cfg([f"fake_path={noise_folder}", "data=digits", "metrics=[fid_inf]", "metrics.compute.fid_inf.extractor=digit_classifier",
                        "metrics.compute.fid_inf.counts=[100,200]"], config_name="evaluate", output_dir=tmp_path / "eval_inf")
        with pytest.raises(ValueError, match=rf"^fake_path={re.escape(str(noise_folder))} holds 150 images: metrics.compute.fid_inf: "
                                             r"sample counts \[100, 200\] need at least two distinct values between 2 and the 150 fakes scored$"):
            evaluate(cfg)
    finally:
        features.DigitFeatures.__call__ = original
    assert extracted == []


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


def test_several_checkpoints_and_seeds_give_runs_and_a_t_interval_per_metric(make_cfg, tmp_path, data_dir, caplog):
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
    # the training run is the unit: each checkpoint's mean over its latent seeds, n = 2 checkpoints (it was n = 4,
    # an interval about half as wide as the two runs support)
    within = [summarize(values[:2])["std"], summarize(values[2:])["std"]]
    assert report["summary"]["fid_digits"] == {
        **summarize([(values[0] + values[1]) / 2, (values[2] + values[3]) / 2]), "unit": "checkpoint",
        "latent_std": pytest.approx(math.sqrt((within[0] ** 2 + within[1] ** 2) / 2), rel=1e-12)}
    assert "values" not in report and "pictures" not in report
    # each run is what a single evaluation of that checkpoint at that latent seed gives (same real samples)
    single = evaluate(make_cfg([f"ckpt_path={multirun / '1' / 'checkpoints' / 'last.ckpt'}", "seeds=[1]", *protocol],
                               config_name="evaluate", output_dir=tmp_path / "single"))
    assert single["values"]["fid_digits"] == pytest.approx(values[3], rel=1e-9)
    assert single["protocol"]["latent_seed"] == 1 and single["protocol"]["reference"]["seed"] == 0

    with caplog.at_level("WARNING", logger="gan"):
        by_glob = evaluate(make_cfg([f"ckpt_path={multirun}/*/checkpoints/last.ckpt", *protocol], config_name="evaluate",
                                    output_dir=tmp_path / "glob"))
    assert [run["values"]["fid_digits"] for run in by_glob["runs"]] == [values[0], values[2]]
    assert not [r for r in caplog.records if "differ in their options" in r.getMessage()]  # seeds of one config
    # a glob over runs of other options was pooled as repeats of one experiment without a word (an audit)
    train(make_cfg(tiny_overrides("dcgan", steps=2) + ["metrics=none", "optimizer.generator.lr=0.003"], output_dir=multirun / "2"))
    with caplog.at_level("WARNING", logger="gan"):
        evaluate(make_cfg([f"ckpt_path={multirun}/*/checkpoints/last.ckpt", *protocol], config_name="evaluate",
                          output_dir=tmp_path / "mixed"))
    said, = [r.getMessage() for r in caplog.records if "differ in their options" in r.getMessage()]
    assert "optimizer.generator.lr: 0.001 -> 0.003" in said and said.endswith("the summary pools them as repeats of one experiment"), said
    with pytest.raises(CheckpointError, match=r"ckpt_path=.*/nothing/\*.ckpt matches no checkpoint"):
        evaluate(make_cfg([f"ckpt_path={tmp_path}/nothing/*.ckpt"], config_name="evaluate"))


def test_compare_with_tests_two_sets_of_runs_by_their_checkpoint_means(make_cfg, tmp_path, data_dir, caplog):
    from gan.metrics.summary import compare, summarize_evaluations

    for side, lr in (("new", "0.003"), ("baseline", "0.001")):
        for seed in (0, 1):
            train(make_cfg(tiny_overrides("dcgan", steps=2) + ["metrics=none", f"seed={seed}", f"optimizer.generator.lr={lr}"],
                           output_dir=tmp_path / side / str(seed)))
    protocol = ["num_samples=64", "metrics.num_real=256", "metrics=[fid_digits]"]
    with caplog.at_level("INFO", logger="gan"):
        report = evaluate(make_cfg([f"ckpt_path={tmp_path / 'new'}", f"compare_with={tmp_path / 'baseline'}", "seeds=[0,1]",
                                    *protocol], config_name="evaluate", output_dir=tmp_path / "eval"))
    ours = [run["values"]["fid_digits"] for run in report["runs"]]
    theirs = [run["values"]["fid_digits"] for run in report["baseline"]["runs"]]
    assert [Path(run["checkpoint"]["path"]).parts[-4:-2] for run in report["baseline"]["runs"]] == \
        [("baseline", "0"), ("baseline", "0"), ("baseline", "1"), ("baseline", "1")]
    expected = compare([(ours[0] + ours[1]) / 2, (ours[2] + ours[3]) / 2],
                       [(theirs[0] + theirs[1]) / 2, (theirs[2] + theirs[3]) / 2], higher_is_better=False)
    assert report["comparison"]["fid_digits"] == {**expected, "unit": "checkpoint"}
    assert report["baseline"]["summary"] == summarize_evaluations(
        [(run["checkpoint"]["path"], run["values"]) for run in report["baseline"]["runs"]])
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert "their runs differ in optimizer.generator.lr: 0.003 -> 0.001" in said
    assert "difference = ckpt_path - compare_with" in said and expected["verdict"] in said

    # what cannot be compared is refused before anything is scored
    one = tmp_path / "new" / "0" / "checkpoints" / "last.ckpt"
    refusals = [
        ([f"ckpt_path={one}", f"compare_with={tmp_path / 'baseline'}", "seeds=[0,1]"],
         r"compare_with=.*baseline: 2 checkpoint\(s\) against ckpt_path's 1; expected several on both sides"),
        ([f"ckpt_path={one}", f"compare_with={tmp_path / 'baseline' / '0' / 'checkpoints' / 'last.ckpt'}"],
         r"one checkpoint against one with one latent seed has no spread to test a difference against"),
        ([f"ckpt_path={tmp_path}/*/*/checkpoints/last.ckpt", f"compare_with={tmp_path / 'baseline'}"],
         r"compare_with=.*baseline holds .*baseline/0/checkpoints/last.ckpt, which ckpt_path=.* holds as well"),
        ([f"fake_path={tmp_path}", "data=digits", f"compare_with={tmp_path / 'baseline'}"],
         r"compare_with=.* with fake_path=.*: a comparison is of checkpoints' runs"),
    ]
    for overrides, message in refusals:
        with pytest.raises(ConfigError, match=message):
            evaluate(make_cfg([*overrides, *protocol], config_name="evaluate", output_dir=tmp_path / "refused"))

    missing = tmp_path / "nope.ckpt"  # the error named the file, not the option it came from (an audit)
    with pytest.raises(CheckpointError, match=rf"^compare_with={re.escape(str(missing))}: .*{re.escape(str(missing))}"):
        evaluate(make_cfg([f"ckpt_path={one}", f"compare_with={missing}", "seeds=[0,1]", *protocol],
                          config_name="evaluate", output_dir=tmp_path / "refused"))

    # one against one is allowed over latent seeds, with a word that it compares two checkpoints, not two recipes
    caplog.clear()
    other = tmp_path / "baseline" / "0" / "checkpoints" / "last.ckpt"
    with caplog.at_level("INFO", logger="gan"):
        pair = evaluate(make_cfg([f"ckpt_path={one}", f"compare_with={other}", "seeds=[0,1]", *protocol],
                                 config_name="evaluate", output_dir=tmp_path / "pair"))
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and r.getMessage().startswith("compare_with:")]
    assert warned == ["compare_with: one checkpoint on each side, so the test is of these two checkpoints over latent seeds "
                      "(sampling noise), not of the recipes that trained them; compare several training runs of each for that"]
    # the same latent seeds on both sides: compared seed by seed (a paired t test)
    assert pair["comparison"]["fid_digits"] == {
        **compare([ours[0], ours[1]], [theirs[0], theirs[1]], higher_is_better=False, paired=True), "unit": "latent seed"}
    assert pair["comparison"]["fid_digits"]["test"] == "paired t"
    assert "interval (paired t)" in "\n".join(r.getMessage() for r in caplog.records)


def test_an_ema_generator_with_spectral_norm_is_scored_as_training_scored_it(make_cfg, tmp_path):
    """Loading recomputed the EMA copy's batch-norm statistics again from spectral-norm vectors already iterated, so
    evaluate.py and load_generator scored another generator than the run did (1.16 FID off at 20 steps: an audit).
    The logged value is float64 now (float32 rounded a sweep's objective), so the two agree to the last digits."""
    from gan.utils.checkpoint import load_generator

    run = tmp_path / "run"
    logged, _ = train(make_cfg(tiny_overrides("sngan", steps=4) + FAST + ["model.generator.spectral_norm=true",
                                                                          "model.ema_decay=0.9"], output_dir=run))
    last = run / "checkpoints" / "last.ckpt"
    report = evaluate(make_cfg([f"ckpt_path={last}", "num_samples=64", "metrics.num_real=256", "interpolation.rows=0",
                                "nearest.rows=0"], config_name="evaluate", output_dir=tmp_path / "eval"))
    assert report["values"]["fid_digits"] == pytest.approx(logged["val/fid_digits"], rel=1e-12, abs=0)
    saved = torch.load(last, weights_only=True)["state_dict"]
    loaded = load_generator(last).state_dict()
    assert all(torch.equal(value, saved[f"generator_ema.module.{key}"]) for key, value in loaded.items())


def test_evaluate_uses_the_thread_count_the_checkpoint_s_run_had(make_cfg, tmp_path, monkeypatch):
    """Sums split across threads add in another order: a checkpoint trained on one thread (every toy preset) was
    scored on one per core, ~1e-10 off the logged value (an audit)."""
    run = tmp_path / "run"
    logged, _ = train(make_cfg(tiny_overrides("dcgan", steps=2) + FAST + ["cpu_threads=1"], output_dir=run))
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["cpu_threads"] == 1
    monkeypatch.setattr(torch, "set_num_threads", lambda n, _set=torch.set_num_threads: calls.append(n) or _set(n))
    calls = []
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        calls.clear()
        report = evaluate(make_cfg([f"ckpt_path={last}", "num_samples=64", "metrics.num_real=256", "interpolation.rows=0",
                                    "nearest.rows=0"], config_name="evaluate", output_dir=tmp_path / "eval"))
        assert calls == [1] and torch.get_num_threads() == 1
        assert report["values"]["fid_digits"] == pytest.approx(logged["val/fid_digits"], rel=1e-12, abs=0)
        calls.clear()
        evaluate(make_cfg([f"ckpt_path={last}", "num_samples=64", "metrics.num_real=256", "interpolation.rows=0",
                           "nearest.rows=0", "metrics=none", "cpu_threads=2"], config_name="evaluate", output_dir=tmp_path / "two"))
        assert calls == [2]  # the option wins
    finally:
        torch.set_num_threads(before)


def test_a_checkpoint_s_thread_count_above_this_machine_s_cores_is_not_taken_but_said(monkeypatch, caplog):
    import evaluate as entry

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n))
    monkeypatch.setattr(entry.os, "cpu_count", lambda: 2)
    with caplog.at_level("INFO", logger="gan"):
        entry.use_thread_count(None, {"cpu_threads": 8})
    assert calls == []  # more threads than cores would only be slow
    assert [r.getMessage() for r in caplog.records] == [
        "the checkpoint's run had 8 CPU threads, this machine 2 cores: its logged values are reproduced to about 1e-10, "
        "not to the last digit"]



@pytest.fixture
def toy_run(make_cfg, tmp_path):
    train(make_cfg(tiny_overrides("gan", "toy2d_grid", steps=2), output_dir=tmp_path / "toy"))
    return tmp_path / "toy" / "checkpoints" / "last.ckpt"


@pytest.fixture
def scored(monkeypatch):
    """The generators MetricSuite.evaluate_generator was given: none, when a refusal comes before scoring."""
    calls = []
    score = MetricSuite.evaluate_generator

    def spy(self, generator, *args, **kwargs):
        calls.append(generator)
        return score(self, generator, *args, **kwargs)

    monkeypatch.setattr(MetricSuite, "evaluate_generator", spy)
    return calls


def edited_checkpoint(source: Path, target: Path, edit) -> Path:
    """A copy of ``source`` changed by ``edit(checkpoint)``, as another version of the framework or a hand may leave it."""
    checkpoint = torch.load(source, weights_only=True)
    edit(checkpoint)
    torch.save(checkpoint, target)
    return target


def test_a_generator_of_another_kind_than_the_data_is_refused_naming_the_checkpoint(make_cfg, tmp_path, toy_run,
                                                                                   digits_run, scored):
    """A 2D-point generator scored against images (or the other way round) failed inside the metric with a ValueError."""
    digits = digits_run[0] / "checkpoints" / "last.ckpt"
    cases = [
        ([f"ckpt_path={toy_run}", "data=digits", "metrics=[fid_digits]"],
         rf"^{re.escape(str(toy_run))}: its generator draws points of shape \[2\], but data=digits yields images of shape "
         r"\[1, 28, 28\]; leave data= out to score it against its own run's data, or choose data of shape \[2\]$"),
        ([f"ckpt_path={digits}", "data=toy2d_grid", "metrics=[mode_coverage]"],
         rf"^{re.escape(str(digits))}: its generator draws images of shape \[1, 28, 28\], but data=toy2d_grid yields "
         r"points of shape \[2\]; leave data= out to score it against its own run's data, or choose data of shape \[1, 28, 28\]$"),
        # the branch of several evaluations (one checkpoint, two latent seeds)
        ([f"ckpt_path={toy_run}", "seeds=[0,1]", "data=digits", "metrics=[fid_digits]"],
         rf"^{re.escape(str(toy_run))}: its generator draws points of shape \[2\], but data=digits"),
        # the run's own metrics, which do not fit the other data: the shape is what is wrong, and it was a metric's
        # refusal ("mode_coverage needs a 2D Gaussian mixture", an audit)
        ([f"ckpt_path={toy_run}", "data=digits"], rf"^{re.escape(str(toy_run))}: its generator draws points of shape \[2\]"),
        ([f"ckpt_path={digits}", "data=toy2d_grid", "metrics=[fid_digits]"],
         rf"^{re.escape(str(digits))}: its generator draws images of shape \[1, 28, 28\], but data=toy2d_grid"),
    ]
    for overrides, message in cases:
        with pytest.raises(ConfigError, match=message):
            evaluate(make_cfg([*overrides, "num_samples=16", "metrics.num_real=64"], config_name="evaluate",
                              output_dir=tmp_path / "eval"))
    assert scored == [] and not (tmp_path / "eval" / "report.json").exists()


def test_images_of_another_size_are_scored_but_not_of_another_channel_count(make_cfg, tmp_path, digits_run):
    """Every image extractor resizes the images to its input size, so a 28x28 generator is scored against 32x32 data;
    gray fakes against colour reals were scored too, measuring the colour."""
    from tests.metrics.conftest import random_images, write_folder

    digits = digits_run[0] / "checkpoints" / "last.ckpt"
    folder = write_folder(random_images(20, channels=1, size=32), tmp_path / "images")

    def run(channels: int, resolution: int):
        return evaluate(make_cfg(
            [f"ckpt_path={digits}", "data=image_folder", f"data.path={folder}", f"data.channels={channels}",
             f"data.resolution={resolution}", "data.num_workers=0", "metrics=[kid]",
             "metrics.compute.kid.extractor=digit_classifier", "num_samples=16", "metrics.num_real=16", "interpolation.rows=0"],
            config_name="evaluate", output_dir=tmp_path / f"eval_{channels}x{resolution}"))

    assert set(run(channels=1, resolution=32)["values"]) == {"kid", "kid_std"}
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(digits))}: its generator draws images of shape \[1, 28, 28\], "
                                          r"but data=image_folder yields images of shape \[3, 28, 28\]; leave data= out"):
        run(channels=3, resolution=28)


def test_a_checkpoint_whose_config_or_weights_do_not_build_this_generator_is_one_line(make_cfg, tmp_path, digits_run, scored):
    """A stored config or weights this version's generator does not take failed with a traceback: Hydra's
    InstantiationException, torch's size mismatch or missing keys, OmegaConf's missing data node."""
    source = digits_run[0] / "checkpoints" / "last.ckpt"
    last_ema = [key for key in torch.load(source, weights_only=True)["state_dict"] if key.startswith("generator_ema.module.")][-1]

    def generator_option(key, value):
        return lambda checkpoint: checkpoint["run_config"]["model"]["generator"].__setitem__(key, value)

    cases = {
        "renamed": (generator_option("_target_", "gan.nets.OldDCGANGenerator"),
                    r"its generator, model\.generator\._target_=gan\.nets\.OldDCGANGenerator, does not exist in this version "
                    r"of the framework \(renamed or removed\); evaluate it with the version that trained it"),
        # a class of one's own whose module is not on this process's path: said as that, not as a renamed class
        "own_class": (generator_option("_target_", "mypkg_not_here.nets.MyGenerator"),
                      r"its generator, model\.generator\._target_=mypkg_not_here\.nets\.MyGenerator, does not import here: "
                      r"there is no module mypkg_not_here here; expected that module next to train\.py, installed, or in a "
                      r"folder on PYTHONPATH, as where it trained"),
        "unknown_option": (generator_option("old_option", 3),
                           r"its model\.generator does not fit gan\.nets\.DCGANGenerator of this version \(got an unexpected "
                           r"keyword argument 'old_option'\); evaluate it with the version that trained it"),
        "other_width": (generator_option("width", 8),
                        r"its generator weights do not fit the gan\.nets\.DCGANGenerator its run_config builds \(tensors: \d+ "
                        r"of another shape; e\.g\. generator_ema\.module\.\S+ is \[[\d, ]+\] there, \[[\d, ]+\] "
                        r"here\); expected the weights and run_config of one run, as train\.py writes them"),
        "missing_tensor": (lambda checkpoint: checkpoint["state_dict"].pop(last_ema),
                           rf"its generator weights do not fit the gan\.nets\.DCGANGenerator its run_config builds \(tensors: "
                           rf"1 missing; e\.g\. {re.escape(last_ema)} is missing there\); expected the weights and "
                           r"run_config of one run, as train\.py writes them"),
        "no_generator_config": (lambda checkpoint: checkpoint["run_config"]["model"].pop("generator"),
                                r"its run_config has no model\.generator\._target_, so it does not say which generator to "
                                r"build; expected a checkpoint written by train\.py"),
        "no_data": (lambda checkpoint: checkpoint["run_config"].pop("data"),
                    r"its run_config has no data node with a _target_, so it does not say which data set it was trained "
                    r"on; choose one with data=<name> \(e\.g\. data=digits\)"),
    }
    for name, (edit, message) in cases.items():
        path = edited_checkpoint(source, tmp_path / f"{name}.ckpt", edit)
        with pytest.raises(CheckpointError, match=rf"^{re.escape(str(path))}: {message}$"):
            evaluate(make_cfg([f"ckpt_path={path}", "metrics=[fid_digits]"], config_name="evaluate", output_dir=tmp_path / "eval"))
    assert scored == [] and not (tmp_path / "eval" / "report.json").exists()


def test_a_bug_in_a_generator_s_constructor_keeps_its_traceback(make_cfg, tmp_path, digits_run, monkeypatch):
    """Only what a checkpoint can get wrong is turned into one line."""
    from hydra.errors import InstantiationException

    import gan.nets

    def broken(self, *args, **kwargs):
        raise TypeError("a bug, not a user error")

    monkeypatch.setattr(gan.nets.DCGANGenerator, "__init__", broken)
    with pytest.raises(InstantiationException, match="a bug, not a user error"):
        evaluate(make_cfg([f"ckpt_path={digits_run[0] / 'checkpoints' / 'last.ckpt'}"], config_name="evaluate"))


def test_data_options_without_a_data_set_name_the_data_set_to_choose(make_cfg, tmp_path, digits_run, toy_run):
    """``data.root=/x`` is refused by Hydra (evaluate.py has no data config without data=), and its hint,
    ``+data.root=/x``, made a node without _target_ that failed with ``Missing key prepare_data``."""
    digits = digits_run[0] / "checkpoints" / "last.ckpt"
    for checkpoint, option, name in ((digits, "data.root=/new/root", "digits"), (toy_run, "data.std=0.1", "toy2d_grid")):
        with pytest.raises(ConfigError, match=rf"^{re.escape(option)} sets options of no data set: evaluate\.py has a data "
                                              r"config only when data=<name> chooses one \(without it, the checkpoint's data "
                                              rf"is used as stored\); expected the data set first, e\.g\. data={name} "
                                              rf"{re.escape(option)} \(the checkpoint's run trained on data={name}\)$"):
            evaluate(make_cfg([f"ckpt_path={checkpoint}", f"+{option}"], config_name="evaluate", output_dir=tmp_path / "eval"))


def test_the_checkpoint_s_missing_data_says_to_name_the_data_set_with_its_root(make_cfg, tmp_path, digits_run):
    """The not-found fix says ``set data.root``, which evaluate.py takes only after ``data=<name>``."""
    def on_missing_mnist(checkpoint):
        checkpoint["run_config"]["data"] = {"_target_": "gan.data.MNISTDataModule", "root": str(tmp_path / "nowhere"),
                                            "download": False, "resolution": 28, "channels": 1, "batch_size": 8,
                                            "num_workers": 0, "sample_shape": [1, 28, 28]}

    path = edited_checkpoint(digits_run[0] / "checkpoints" / "last.ckpt", tmp_path / "mnist.ckpt", on_missing_mnist)
    with pytest.raises(DataError, match=r"^mnist not found in .*nowhere.*; fix: set data\.root to .*; evaluate\.py reads the "
                                        r"checkpoint run's data \(data=mnist\): give such options after its name, e\.g\. "
                                        r"data=mnist data\.root=/new/root$"):
        evaluate(make_cfg([f"ckpt_path={path}", "metrics=[fid_digits]"], config_name="evaluate", output_dir=tmp_path / "eval"))


def test_several_checkpoints_are_all_checked_before_the_first_is_scored(make_cfg, tmp_path, toy_run, scored):
    """A refusal of job 1 (a metric it cannot take, a truncated file, other data) came after job 0 was scored,
    and a metric's refusal named no checkpoint."""
    multirun = tmp_path / "multirun"
    for job, model in enumerate(("cgan", "dcgan")):
        train(make_cfg(tiny_overrides(model, steps=2) + ["metrics=none"], output_dir=multirun / str(job)))
    job1 = multirun / "1" / "checkpoints" / "last.ckpt"

    def run(*overrides):
        evaluate(make_cfg([*overrides, "num_samples=16", "metrics.num_real=64"], config_name="evaluate",
                          output_dir=tmp_path / "eval"))

    with pytest.raises(ConfigError, match=rf"^{re.escape(str(job1))}: metric class_accuracy scores each class of a "
                                          r"class-conditional generator, but this one is unconditional; use a conditional "
                                          r"model \(e\.g\. model=cgan\) or drop class_accuracy$"):
        run(f"ckpt_path={multirun}", "metrics=[class_accuracy]")

    mixed = tmp_path / "mixed"
    for job, checkpoint in enumerate((job1, toy_run)):
        (mixed / str(job) / "checkpoints").mkdir(parents=True)
        shutil.copy(checkpoint, mixed / str(job) / "checkpoints" / "last.ckpt")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(mixed / '1' / 'checkpoints' / 'last.ckpt'))} was trained on "
                                          rf"other data than {re.escape(str(mixed / '0' / 'checkpoints' / 'last.ckpt'))}"):
        run(f"ckpt_path={mixed}", "metrics=[fid_digits]")

    job1.write_bytes(job1.read_bytes()[:3000])  # cut short, as by a copy that did not finish
    with pytest.raises(CheckpointError, match=rf"^cannot read checkpoint {re.escape(str(job1))}: a zip archive without its end"):
        run(f"ckpt_path={multirun}", "metrics=[fid_digits]")
    assert scored == [] and not (tmp_path / "eval" / "report.json").exists()


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
    said = []
    try:
        assert child.stdout.readline().strip() == "started"
        time.sleep(2)  # into the native call (~25 s)
        child.send_signal(signal.SIGINT)  # Python delivers it only after matrix_power returns ...
        # waited for, not slept on: a loaded machine took longer than a fixed pause to say it (a flakiness audit); at
        # the end of stderr (the process ended without saying it) the loop ends and the asserts below fail
        for line in child.stderr:
            said.append(line)
            if "Ctrl+C again to abort at once" in line:
                break
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)  # ... this one ends the process at once
        returncode = child.wait(timeout=120)
        waited = time.monotonic() - sent
    finally:
        child.kill()
    out, err = child.communicate()
    assert returncode == 130 and "finished" not in out, err[-2000:]
    assert waited < 10, f"the second Ctrl+C took {waited:.1f} s to end the process (the native call lasts ~25 s)"
    assert "Ctrl+C again to abort at once" in "".join(said) and "Aborted" in err


def test_a_metric_that_cannot_apply_is_named_before_its_feature_network_is_looked_for(make_cfg, tmp_path, toy_run,
                                                                                       digits_run, scored):
    """`metrics=[fid]` on 2D points, `intra_fid` on an unconditional generator or `class_accuracy` on a folder of images
    were reported as the missing Inception weights (a ~100 MB download, then the real refusal)."""
    from gan.utils.errors import ConfigError

    missing = tmp_path / "no" / "inception.pth"  # building the extractor would fail on it
    digits = digits_run[0] / "checkpoints" / "last.ckpt"
    cases = [
        ([f"ckpt_path={toy_run}", "metrics=[fid]"], r"^metric fid scores images, but data toy2d_grid yields points$"),
        ([f"ckpt_path={digits}", "metrics=[intra_fid]"],
         rf"^{re.escape(str(digits))}: metric intra_fid scores each class of a class-conditional generator, but this one is unconditional"),
        ([f"fake_path={tmp_path}", "data=digits", "metrics=[class_accuracy]"],
         rf"^fake_path={re.escape(str(tmp_path))} \(images without class labels\): metric class_accuracy scores each class"),
    ]
    for overrides, message in cases:
        with pytest.raises(ConfigError, match=message):
            evaluate(make_cfg(overrides + [f"metrics.inception_weights={missing}"], config_name="evaluate",
                              output_dir=tmp_path / "out"))
    with pytest.raises(ConfigError, match=r"^metric fid scores images, but data toy2d_grid yields points$"):  # and in training
        train(make_cfg(tiny_overrides("gan", "toy2d_grid", steps=1) + ["metrics=[fid]", f"metrics.inception_weights={missing}"],
                       output_dir=tmp_path / "train"))
    assert not scored and not (tmp_path / "train" / "checkpoints").exists()


def test_metrics_none_scores_nothing_and_draws_the_pictures(make_cfg, tmp_path, digits_run, scored):
    """`metrics=none` fell back to the checkpoint run's selection, as no `metrics=` does."""
    checkpoint = digits_run[0] / "checkpoints" / "last.ckpt"
    report = evaluate(make_cfg([f"ckpt_path={checkpoint}", "metrics=none"], config_name="evaluate", output_dir=tmp_path / "out"))
    assert report["values"] == {} and set(report["pictures"]) == {"samples", "interpolation", "nearest"}
    assert (tmp_path / "out" / "samples.png").is_file()
    report = evaluate(make_cfg([f"ckpt_path={checkpoint}"], config_name="evaluate", output_dir=tmp_path / "again"))
    assert "fid_digits" in report["values"]  # without metrics=: the run's own selection, as before


def test_a_conditional_generator_s_picture_has_a_row_per_class(make_cfg, tmp_path, monkeypatch):
    """samples.png drew uniformly random classes, which cannot show whether the generator follows its labels (an
    audit); it has one row per class with one code down each column, as the training grids."""
    import evaluate as evaluate_module
    from gan.utils.checkpoint import load_generator

    train(make_cfg(tiny_overrides("cgan", steps=2) + ["metrics=none"], output_dir=tmp_path / "run"))
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    drawn = {}
    save = evaluate_module.save_samples
    monkeypatch.setattr(evaluate_module, "save_samples", lambda samples, *a, **k: (drawn.update(samples=samples, nrow=k.get("nrow")),
                                                                                  save(samples, *a, **k))[1])
    evaluate(make_cfg([f"ckpt_path={checkpoint}", "metrics=none", "num_images=20", "interpolation.rows=0", "seed=3"],
                      config_name="evaluate", output_dir=tmp_path / "out"))
    generator = load_generator(checkpoint)
    codes = generator.noise(2, torch.Generator().manual_seed(3))
    labels = torch.arange(10).repeat_interleave(2)  # rows 0, 0, 1, 1, ...: two images per class, a row each
    with torch.no_grad():
        expected = generator(codes[torch.arange(20) % 2], labels)
    assert drawn["nrow"] == 2 and torch.allclose(drawn["samples"], expected)


def test_checkpoints_of_one_run_are_not_summarized_as_runs_and_linked_job_folders_are_found(tmp_path):
    """best.ckpt and last.ckpt of one run were counted as two training runs, their interval and p-value presented as
    over runs; a multirun folder whose jobs were links matched no checkpoint (an audit)."""
    from evaluate import check_one_checkpoint_per_run, find_checkpoints

    for job in ("a", "b"):
        (tmp_path / "runs" / job / "checkpoints").mkdir(parents=True)
        for name in ("last.ckpt", "best.ckpt"):
            (tmp_path / "runs" / job / "checkpoints" / name).write_bytes(b"")
    pattern = str(tmp_path / "runs" / "a" / "checkpoints" / "*.ckpt")
    both = find_checkpoints(pattern)
    with pytest.raises(ConfigError, match=rf"^ckpt_path={re.escape(pattern)}: .*best\.ckpt and .*last\.ckpt are checkpoints "
                                          rf"of one run \({re.escape(str(tmp_path / 'runs' / 'a'))}\); several checkpoints are "
                                          r"summarized as training runs, so expected one checkpoint per run"):
        check_one_checkpoint_per_run(both, "ckpt_path", pattern)
    check_one_checkpoint_per_run(find_checkpoints(str(tmp_path / "runs")), "ckpt_path", "runs")  # one last.ckpt each
    check_one_checkpoint_per_run(both[:1], "ckpt_path", pattern)  # one checkpoint: its latent seeds are the unit
    (tmp_path / "linked").mkdir()
    for job in ("a", "b"):
        (tmp_path / "linked" / job).symlink_to(tmp_path / "runs" / job, target_is_directory=True)
    assert [Path(path).parts[-3] for path in find_checkpoints(str(tmp_path / "linked"))] == ["a", "b"]
