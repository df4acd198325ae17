"""benchmarks/gpu_check.py, the one prepared run for a lent GPU, exercised on the CPU (--smoke): every check
composes and trains, its numbers are the throughput clock's, a non-finite run or a failing check is reported
and does not stop the others."""
import json
import subprocess

import pytest
import torch

import train as train_module
from benchmarks import gpu_check, throughput


def read_rows(out):
    return [json.loads(line) for line in (out / "gpu_check.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_smoke_runs_every_check_and_reports_its_ratio(tmp_path):
    assert gpu_check.main(["--smoke", "--no-tests", "--out", str(tmp_path)]) == 0
    rows = read_rows(tmp_path)
    expected = [(c["name"], p) for c in gpu_check.checks(smoke=True) for p in c["precisions"]]
    assert [(r["check"], r["precision"]) for r in rows] == expected
    iterations = [r for r in rows if r["check"].endswith("_iteration_vs_bare")]
    runs = [r for r in rows if r not in iterations]
    for row in runs:
        assert row["ok"] and row["finite"] and row["generator_steps_per_s"] > 0 and row["timed_generator_steps"] == 2
    for row in rows:
        assert row["torch"] == torch.__version__
    framework = {r["check"]: r["framework"] for r in runs}
    assert framework.pop("dcgan_28px_defaults_vs_bare") == "shipped callbacks and metrics, csv logger"
    assert set(framework.values()) == {"core"}  # every other row times the framework's core
    # the module's iteration against the bare one: its speed ratio, and its only extra operators its two logged scores
    assert [r["check"] for r in iterations] == ["dcgan_28px_iteration_vs_bare", "wgan_gp_28px_iteration_vs_bare"]
    for row, extra in zip(iterations, ({"mean": 2.0, "sigmoid": 2.0}, {"mean": 2.0})):
        assert row["ok"] and row["ratio_to_bare"] == pytest.approx(row["bare_us"] / row["module_us"], abs=1e-3)
        assert row["extra_ops"] == extra and row["module_ops"] - row["bare_ops"] == sum(extra.values())
        assert "meets_target" not in row  # the target is a whole run's
    for row in runs:
        if row["check"].endswith("_vs_bare"):
            assert row["ratio_to_bare"] == pytest.approx(row["generator_steps_per_s"] / row["bare_loop_generator_steps_per_s"], abs=1e-3)
            assert row["meets_target"] == (row["ratio_to_bare"] >= gpu_check.BARE_RATIO_TARGET)
        else:
            assert "ratio_to_bare" not in row
    table = (tmp_path / "gpu_check.md").read_text().splitlines()
    assert sum(line.startswith("| ") for line in table) == len(rows) + 1  # a header, then one line per row
    assert "r3gan" in rows[2]["overrides"] and "data=cifar10" in rows[2]["overrides"]
    assert rows[3]["precision"] == "bf16-mixed"


def test_a_run_that_ends_non_finite_fails_its_row_and_the_others_still_run(tmp_path, monkeypatch):
    real_train = train_module.train

    def poisoned(cfg, callbacks=()):
        metrics, objects = real_train(cfg, callbacks)
        if cfg.model.generator._target_.endswith("DCGANGenerator"):
            with torch.no_grad():
                next(objects["module"].generator.parameters()).fill_(float("nan"))
        return metrics, objects

    monkeypatch.setattr(train_module, "train", poisoned)
    status = gpu_check.main(["--smoke", "--no-tests", "--only", "dcgan_28px_vs_bare", "r3gan_32px", "--out", str(tmp_path)])
    rows = read_rows(tmp_path)
    assert status == 1
    assert [(r["check"], r["finite"], r["ok"]) for r in rows] == [
        ("dcgan_28px_vs_bare", False, False), ("r3gan_32px", True, True), ("r3gan_32px", True, True)]


def test_a_failing_check_is_recorded_with_its_error(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr("benchmarks.throughput.measure", broken)
    assert gpu_check.main(["--smoke", "--no-tests", "--only", "sngan_resnet_32px", "--out", str(tmp_path)]) == 1
    rows = read_rows(tmp_path)
    assert [r["ok"] for r in rows] == [False, False]
    assert all(r["error"] == "RuntimeError: CUDA error: out of memory" for r in rows)


@pytest.mark.parametrize("returncode, summary, ok", [
    (0, "6 skipped in 0.07s", True),  # a CPU: every GPU test skipped
    (0, "6 passed in 40.1s", True),
    (1, "1 failed, 5 skipped in 3.2s", False),  # a failure among skips is still a failure
    (2, "1 error in 0.5s", False),
])
def test_the_gpu_tests_row_fails_exactly_when_pytest_does(tmp_path, monkeypatch, returncode, summary, ok):
    def fake_run(*args, **kwargs):
        return subprocess.CompletedProcess(args, returncode, stdout=f"...\n{summary}\n", stderr="")

    monkeypatch.setattr(gpu_check.subprocess, "run", fake_run)
    row = gpu_check.run_gpu_tests(tmp_path)
    assert (row["ok"], row["summary"]) == (ok, summary)
    assert (tmp_path / "test_gpu.log").read_text().strip().endswith(summary)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_without_a_gpu_only_the_smoke_mode_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(["--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--smoke" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(["--smoke", "--only", "fid", "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "fid" in capsys.readouterr().err


def test_steps_option_sets_every_selected_checks_budget_and_rows_are_written_as_measured(tmp_path, monkeypatch):
    real_measure = throughput.measure
    seen = []

    def measure_then_read(*args, **kwargs):
        # the rows measured before this one are already on disk: a run stopped by a time limit keeps them
        seen.append(len(read_rows(tmp_path)))
        return real_measure(*args, **kwargs)

    monkeypatch.setattr("benchmarks.throughput.measure", measure_then_read)
    assert gpu_check.main(["--smoke", "--no-tests", "--only", "sngan_resnet_32px", "--steps", "5", "2",
                           "--out", str(tmp_path)]) == 0
    rows = read_rows(tmp_path)
    assert [r["timed_generator_steps"] for r in rows] == [3, 3]  # 5 steps, the clock starts after 2
    assert seen == [0, 1]


def test_steps_option_rejects_a_warmup_not_below_the_steps(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(["--smoke", "--steps", "4", "4", "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "[4, 4]" in capsys.readouterr().err


def test_repeats_run_the_checks_in_turn_and_the_table_gives_the_median_ratio(tmp_path, monkeypatch):
    ratios = iter([0.5, 0.9, 0.7])  # framework steps/s per run over a bare loop at 1.0 step/s

    order = []

    def fake_measure(overrides, precision, compile_, steps, warmup, out, bare, bare_first, shipped_callbacks):
        assert shipped_callbacks is False  # the core pair
        order.append(bare_first)
        return {"generator_steps_per_s": next(ratios), "bare_loop_generator_steps_per_s": 1.0, "finite": True}

    monkeypatch.setattr("benchmarks.throughput.measure", fake_measure)
    assert gpu_check.main(["--smoke", "--no-tests", "--only", "dcgan_28px_vs_bare", "--repeats", "3",
                           "--out", str(tmp_path)]) == 0
    rows = read_rows(tmp_path)
    assert [(r["repeat"], r["ratio_to_bare"]) for r in rows] == [(0, 0.5), (1, 0.9), (2, 0.7)]
    assert order == [False, True, False] and [r["bare_first"] for r in rows] == order
    table = (tmp_path / "gpu_check.md").read_text()
    assert "median framework / bare ratio 0.700 over 3 runs (min 0.500, max 0.900" in table


def test_repeats_must_be_positive(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(["--smoke", "--repeats", "0", "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "got 0" in capsys.readouterr().err


@pytest.mark.parametrize("bare_first", [False, True])
def test_measure_times_the_bare_loop_before_or_after_the_framework(tmp_path, monkeypatch, bare_first):
    from benchmarks import overhead
    from tests.tiny_nets import TINY_NETS

    order = []
    real_train, real_bare_loop = train_module.train, overhead.bare_loop
    monkeypatch.setattr(train_module, "train", lambda *a, **k: order.append("framework") or real_train(*a, **k))
    monkeypatch.setattr(overhead, "bare_loop", lambda *a, **k: order.append("bare") or real_bare_loop(*a, **k))
    overrides = ["model=dcgan", "data=digits", "presets=none", *TINY_NETS["dcgan"], "data.batch_size=8",
                 "trainer.accelerator=cpu", "trainer.devices=1"]
    row = throughput.measure(overrides, "32-true", False, 4, 2, tmp_path, bare=True, bare_first=bare_first)
    assert order == (["bare", "framework"] if bare_first else ["framework", "bare"])
    assert row["generator_steps_per_s"] > 0 and row["bare_loop_generator_steps_per_s"] > 0
