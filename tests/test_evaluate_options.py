"""evaluate.py's options and helpers that a user meets rarely: ``seed`` without ``seeds``, ``data=`` over checkpoints of
other data, the warning over checkpoints of other options, the order of a multirun's jobs, the reals nearest.png
searches, the checkpoint's thread count and the summary's wording."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import evaluate as entry
from evaluate import evaluate
from gan.utils.errors import ConfigError
from tests.conftest import compose_config, tiny_overrides
from train import train

# mode_coverage alone: the toy runs' own selection, cheap on 2D points; no latent interpolation (points have none)
TOY_METRICS = ["metrics=[mode_coverage]"]


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory, data_dir) -> dict[str, Path]:
    """One tiny run per toy data set (2 generator steps), trained once for the module: data name -> last.ckpt."""
    root = tmp_path_factory.mktemp("toy_runs")
    runs = {}
    for data in ("toy2d_grid", "toy2d_ring"):
        train(compose_config("train", tiny_overrides("gan", data, steps=2) + ["metrics=none"], root / data, data_dir))
        runs[data] = root / data / "checkpoints" / "last.ckpt"
    return runs


def multirun_of(folder: Path, *checkpoints: Path) -> Path:
    """The layout of ``train.py -m``: job i's checkpoint at ``folder/i/checkpoints/last.ckpt``."""
    for job, checkpoint in enumerate(checkpoints):
        (folder / str(job) / "checkpoints").mkdir(parents=True)
        shutil.copy(checkpoint, folder / str(job) / "checkpoints" / "last.ckpt")
    return folder


def with_generator_lr(source: Path, target: Path, lr: float) -> Path:
    """A copy of ``source`` whose stored run_config says it trained with another generator learning rate."""
    checkpoint = torch.load(source, weights_only=True)
    checkpoint["run_config"]["optimizer"]["generator"]["lr"] = lr
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, target)
    return target


def test_seed_without_seeds_scores_that_latent_seed(make_cfg, tmp_path, toy_runs):
    """``seed=3`` without ``seeds`` scored the samples of latent seed 0, silently ignoring the seed the user chose."""
    checkpoint = toy_runs["toy2d_grid"]

    def run(*overrides, out):
        return evaluate(make_cfg([f"ckpt_path={checkpoint}", *TOY_METRICS, *overrides], config_name="evaluate",
                                 output_dir=tmp_path / out))

    by_seed = run("seed=3", out="seed")
    by_seeds = run("seed=3", "seeds=[3]", out="seeds")  # the seed given as the list of one (same reference seed)
    assert by_seed["protocol"]["latent_seed"] == 3
    assert by_seed["protocol"] == by_seeds["protocol"] and by_seed["values"] == by_seeds["values"]


def test_data_given_scores_checkpoints_trained_on_other_data(make_cfg, tmp_path, toy_runs):
    """Checkpoints of other data are refused with 'pass data=<name>', and with data= given they were refused all the same."""
    multirun = multirun_of(tmp_path / "multirun", toy_runs["toy2d_grid"], toy_runs["toy2d_ring"])
    first, second = (str(multirun / job / "checkpoints" / "last.ckpt") for job in ("0", "1"))

    def run(*overrides):
        return evaluate(make_cfg([f"ckpt_path={multirun}", *TOY_METRICS, *overrides], config_name="evaluate",
                                 output_dir=tmp_path / "eval"))

    with pytest.raises(ConfigError, match=rf"^{re.escape(second)} was trained on other data than {re.escape(first)}; "
                                          r"pass data=<name> to score every checkpoint against one data set$"):
        run()
    report = run("data=toy2d_grid")
    assert [run_["checkpoint"]["path"] for run_ in report["runs"]] == [first, second]
    assert report["data"] == "toy2d_grid"


def test_data_given_compares_with_a_baseline_trained_on_other_data(make_cfg, tmp_path, toy_runs):
    """compare_with= over a baseline of other data is refused with 'pass data=<name>', and with data= given it was
    refused all the same."""
    ours, theirs = toy_runs["toy2d_grid"], toy_runs["toy2d_ring"]

    def run(*overrides):
        return evaluate(make_cfg([f"ckpt_path={ours}", f"compare_with={theirs}", "seeds=[0,1]", *TOY_METRICS, *overrides],
                                 config_name="evaluate", output_dir=tmp_path / "eval"))

    with pytest.raises(ConfigError, match=rf"^{re.escape(str(theirs))} \(compare_with\) was trained on other data than "
                                          rf"{re.escape(str(ours))}; pass data=<name> to score both sides against one data set$"):
        run()
    report = run("data=toy2d_grid")
    assert len(report["runs"]) == 2 and len(report["baseline"]["runs"]) == 2
    assert {run_["checkpoint"]["path"] for run_ in report["baseline"]["runs"]} == {str(theirs)}
    assert "mode_coverage/modes" in report["comparison"]


def test_the_warning_over_checkpoints_of_other_options_counts_only_the_further_ones(make_cfg, tmp_path, toy_runs, caplog):
    """With one checkpoint of other options the warning went on ', and 0 more checkpoints differ'."""
    source = toy_runs["toy2d_grid"]
    lr = float(torch.load(source, weights_only=True)["run_config"]["optimizer"]["generator"]["lr"])
    one = multirun_of(tmp_path / "one", source)
    with_generator_lr(source, one / "1" / "checkpoints" / "last.ckpt", lr * 3)
    two = multirun_of(tmp_path / "two", source)
    for job, factor in ((1, 3), (2, 5)):
        with_generator_lr(source, two / str(job) / "checkpoints" / "last.ckpt", lr * factor)

    def warning(folder: Path) -> str:
        caplog.clear()
        with caplog.at_level("WARNING", logger="gan"):
            evaluate(make_cfg([f"ckpt_path={folder}", "metrics=none"], config_name="evaluate",
                              output_dir=tmp_path / f"eval_{folder.name}"))
        said, = [r.getMessage() for r in caplog.records if "differ in their options" in r.getMessage()]
        return said

    said = warning(one)
    assert f"optimizer.generator.lr: {lr} -> {lr * 3}" in said and "more checkpoints differ" not in said, said
    said = warning(two)
    assert said.endswith(", and 1 more checkpoints differ; the summary pools them as repeats of one experiment"), said


def test_a_multirun_s_jobs_are_found_in_numeric_order(tmp_path):
    """Jobs 2 and 10 of a multirun were listed (and reported) as 10 before 2."""
    for job in ("10", "2"):
        (tmp_path / job / "checkpoints").mkdir(parents=True)
        (tmp_path / job / "checkpoints" / "last.ckpt").write_bytes(b"")
    expected = [str(tmp_path / job / "checkpoints" / "last.ckpt") for job in ("2", "10")]
    assert entry.find_checkpoints(str(tmp_path)) == expected
    assert entry.find_checkpoints(str(tmp_path / "*" / "checkpoints" / "last.ckpt")) == expected


def test_nearest_png_searches_the_metrics_draw_of_reals(make_cfg, monkeypatch):
    """nearest.png searched the whole train split for each fake's nearest reals, not the metrics.num_real reals the
    metrics (and the memorization metric) compare with."""
    from gan.metrics.registry import real_sample_indices
    from gan.utils.instantiate import build

    datamodule = build(make_cfg(["data=digits"], config_name="evaluate").data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    assert len(datamodule.train_set) > 16
    searched = []
    search = entry.nearest_reals

    def spy(fakes, chunks, k):
        chunks = list(chunks)
        searched.append(torch.cat(chunks))
        return search(fakes, chunks, k)

    monkeypatch.setattr(entry, "nearest_reals", spy)
    cfg = OmegaConf.create({"metrics": {"num_real": 16, "seed": 5}, "nearest": {"rows": 2, "k": 3}})
    fakes = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    rows = entry.nearest_rows(fakes, datamodule, cfg)
    reals = torch.stack([datamodule.train_set[int(i)][0] for i in real_sample_indices(datamodule, 16, 5)]).float()
    assert len(searched) == 1 and len(searched[0]) == 16  # one search, over num_real reals
    assert torch.equal(searched[0], reals)  # the very reals the metrics draw
    assert rows.shape == (2 * 4, 1, 28, 28)


def test_a_checkpoint_s_thread_count_equal_to_this_machine_s_cores_is_taken(monkeypatch, caplog):
    """A run recorded with as many threads as this machine has cores was scored with another count (its logged values
    reproduced only to ~1e-10) and a note that the machine had too few cores."""
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    monkeypatch.setattr(entry.os, "cpu_count", lambda: 4)
    with caplog.at_level("INFO", logger="gan"):
        entry.use_thread_count(None, {"cpu_threads": 4})
    assert calls == [4]
    assert not [r for r in caplog.records if "cores" in r.getMessage()]


def test_the_summary_names_its_latent_seeds_in_the_right_number():
    """The log of a summary over two latent seeds read '2 latent seed'."""
    assert entry.what_repeats(1, 2).startswith("1 checkpoint x 2 latent seeds; n, std and interval over the latent seeds")
    assert entry.what_repeats(1, 1).startswith("1 checkpoint x 1 latent seed; ")
    assert entry.what_repeats(3, 2) == ("3 checkpoints x 2 latent seeds; n, std and interval over the checkpoints, each "
                                        "the mean of its latent seeds")
    assert entry.what_repeats(3, 1) == "3 checkpoints x 1 latent seed; n, std and interval over the checkpoints"
