"""benchmarks/ablation.py, small_data.py and cooldown_paired.py without training: seeds of a sweep, stopped jobs,
reruns counted once, what a paired-test row records. Hand-made job folders and JSON lines only."""
from __future__ import annotations

import csv
import json
import statistics
import sys
import types

import pytest
from scipy import stats as scipy_stats

TOY = {"mode_coverage/modes": 20.0, "mode_coverage/high_quality": 0.5, "mode_coverage/reverse_kl": 0.4}


# ------------------------------------------------------------------------------------------- ablation
def write_job(sweep, number, data, trick, seed, values, scored=(500, 1000), generator_steps=1000, health=None,
              status=None):
    """A job folder as ``train.py -m experiment=ablate_tricks seed=...`` leaves it: Hydra's overrides and config,
    the metrics callback's jsonl (``values`` at the last scored step), the health check's events, result.json."""
    job = sweep / str(number)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(
        f"- data={data}\n- +experiment/ablation={trick}\n- seed={seed}\n- experiment=ablate_tricks\n")
    (job / ".hydra" / "config.yaml").write_text(f"seed: {seed}\ngenerator_steps: {generator_steps}\ndata:\n  batch_size: 64\n")
    (job / "metrics").mkdir()
    metric = "mode_coverage" if data == "toy2d_grid" else "fid_digits"
    records = [{"generator_step": step, "global_step": 2 * step, "values": {k: v * step / scored[-1] for k, v in values.items()},
                "protocol": {"metrics": {metric: {}}}} for step in scored]
    (job / "metrics" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if health is not None:
        (job / "health.jsonl").write_text("".join(json.dumps(event) + "\n" for event in health))
    if status is not None:
        (job / "result.json").write_text(json.dumps({"status": status}))


def table_cells(table: str, trick: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {trick} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_ablation_keeps_every_seed_and_reports_mean_std_and_n(tmp_path):
    from benchmarks import ablation

    sweep, rerun = tmp_path / "sweep", tmp_path / "rerun"
    number = 0
    for trick, modes in (("baseline", (20.0, 22.0, 24.0)), ("ttur", (23.0, 24.0, 25.0)), ("ema", (10.0, 11.0, 12.0))):
        for seed, value in zip((1, 2, 3), modes):
            write_job(sweep, number, "toy2d_grid", trick, seed, {**TOY, "mode_coverage/modes": value})
            number += 1
    write_job(sweep, number, "digits", "baseline", 1, {"fid_digits": 100.0})  # one seed only
    write_job(sweep, number + 1, "digits", "ttur", 1, {"fid_digits": 80.0})
    write_job(rerun, 0, "toy2d_grid", "ttur", 3, {**TOY, "mode_coverage/modes": 19.0})  # seed 3 of ttur re-run: wins
    paths = ablation.main([str(sweep), str(rerun), "--out", str(tmp_path / "out")])

    rows = list(csv.DictReader(open(paths["csv"])))
    assert len(rows) == 11  # every job, one per (data, trick, seed)
    assert sorted((r["trick"], r["seed"]) for r in rows if r["data"] == "toy2d_grid") == \
        [("baseline", "1"), ("baseline", "2"), ("baseline", "3"), ("ema", "1"), ("ema", "2"), ("ema", "3"),
         ("ttur", "1"), ("ttur", "2"), ("ttur", "3")]
    assert next(float(r["mode_coverage/modes"]) for r in rows if (r["trick"], r["seed"]) == ("ttur", "3")) == 19.0

    table = paths["md"].read_text()
    header = table_cells(table, "trick")
    assert header[1:5] == ["toy2d_grid mode_coverage/modes (↑)", "toy2d_grid mode_coverage/high_quality (↑)",
                           "toy2d_grid mode_coverage/reverse_kl (↓)", "toy2d_grid n"]
    baseline, ttur = table_cells(table, "baseline"), table_cells(table, "ttur")
    assert baseline[1] == f"22 ± {statistics.stdev([20, 22, 24]):.2g}" and baseline[4] == "3"
    ttur_mean = statistics.fmean([23, 24, 19])
    p_value = scipy_stats.ttest_ind([23, 24, 19], [20, 22, 24], equal_var=False).pvalue  # within the seeds' spread
    assert ttur[1] == f"{ttur_mean:.4g} ± {statistics.stdev([23, 24, 19]):.2g} ({ttur_mean - 22:+.3g}, p={p_value:.2g})"
    assert ttur[4] == "3"
    assert ttur[2] == "0.5 ± 0 (+0, p=1)"
    assert ttur[5:] == ["80 ± - (-20)", "1"]  # one seed: no std
    assert "13 jobs" not in table and "11 jobs" in table
    # a change beyond the seeds' spread: Welch's interval leaves out 0, and fewer modes is worse
    welch = scipy_stats.ttest_ind([10, 11, 12], [20, 22, 24], equal_var=False)
    assert table_cells(table, "ema")[1] == f"11 ± 1 (-11, p={welch.pvalue:.2g}, worse)"


def test_ablation_flags_jobs_that_stopped_before_their_generator_steps(tmp_path):
    from benchmarks import ablation

    sweep = tmp_path / "sweep"
    write_job(sweep, 0, "toy2d_grid", "baseline", 1, TOY)
    write_job(sweep, 1, "toy2d_grid", "baseline", 2, {**TOY, "mode_coverage/modes": 22.0})
    # stopped by the health check after the step-500 score: its last score is at 500 of 1,000
    write_job(sweep, 2, "toy2d_grid", "ttur", 1, {**TOY, "mode_coverage/modes": 5.0}, scored=(500,),
              health=[{"kind": "divergence", "generator_step": 700, "action": "stop_and_keep_last_healthy"}], status="diverged")
    write_job(sweep, 3, "toy2d_grid", "ttur", 2, {**TOY, "mode_coverage/modes": 23.0})
    # every seed of this cell ended early: the last score below generator_steps (no health event); a warning does not stop
    write_job(sweep, 4, "toy2d_grid", "ema", 1, {**TOY, "mode_coverage/modes": 3.0}, scored=(500,),
              health=[{"kind": "mode_collapse", "generator_step": 400, "action": "warn"}])
    # a stop event at the last step is a stop too
    write_job(sweep, 5, "toy2d_grid", "spectral_norm", 1, {**TOY, "mode_coverage/modes": 24.0},
              health=[{"kind": "discriminator_overpowers", "generator_step": 1000, "action": "stop"}])
    jobs = {(job["trick"], job["seed"]): job for job in ablation.collect([sweep])}
    assert jobs["ttur", "1"]["stopped_at"] == 700 and jobs["ema", "1"]["stopped_at"] == 500
    assert jobs["spectral_norm", "1"]["stopped_at"] == 1000
    assert jobs["baseline", "1"]["stopped_at"] is None and jobs["ttur", "2"]["stopped_at"] is None

    paths = ablation.main([str(sweep), "--out", str(tmp_path / "out")])
    table = paths["md"].read_text()
    # ttur: the stopped seed is left out of the mean and the comparison, and flagged
    assert table_cells(table, "ttur")[1] == "23 ± - (+2)"
    assert table_cells(table, "ttur")[4] == "1 (1 stopped at step 700, left out)"
    # ema: only a stopped run: its value flagged, not compared with the baseline
    assert table_cells(table, "ema")[1] == "3 ± - (stopped at step 500)" and table_cells(table, "ema")[4] == "0 (1 stopped at step 500)"
    assert table_cells(table, "spectral_norm")[1] == "24 ± - (stopped at step 1000)"
    assert "sweep/2 (toy2d_grid, ttur, seed 1) stopped at step 700 of 1000 (health: divergence)" in table
    assert "sweep/4 (toy2d_grid, ema, seed 1) stopped at step 500 of 1000" in table
    rows = {(r["trick"], r["seed"]): r for r in csv.DictReader(open(paths["csv"]))}
    assert rows["ttur", "1"]["stopped_at"] == "700" and rows["ttur", "2"]["stopped_at"] == ""


# ----------------------------------------------------------------------------------------- small data
def small_record(variant, trick, seed, fid, finished=None, seconds=100.0):
    record = {"variant": variant, "trick": trick, "seed": seed, "steps": 1500, "arch": None, "extra": [],
              "fid_digits": fid, "values": {"fid_digits": fid}, "generator_step": 1500, "seconds": seconds}
    return record if finished is None else dict(record, finished=finished)


def test_small_data_counts_a_rerun_seed_once_with_its_newest_record():
    from benchmarks import small_data

    records = [small_record("dcgan", "none", seed, fid, f"2026-12-01 10:0{seed}:00") for seed, fid in enumerate((30.0, 32.0, 34.0))]
    records.append(small_record("dcgan", "none", 1, 40.0, "2026-12-02 10:00:00"))  # seed 1 made again with --rerun
    records.append(small_record("dcgan", "none", 2, 99.0, "2026-11-30 10:00:00"))  # an older record appended late
    records += [small_record("dcgan", "lecam", 0, 20.0), small_record("dcgan", "lecam", 0, 25.0)]  # no time: later line
    lines = small_data.table(records).splitlines()
    none = next(line for line in lines if line.startswith("| dcgan | none |"))
    newest = [30.0, 40.0, 34.0]
    assert none == (f"| dcgan | none | {statistics.fmean(newest):.1f} | {statistics.stdev(newest):.1f} | 30.0 - 40.0 |  | 3 | 100 |")
    lecam = next(line for line in lines if line.startswith("| dcgan | lecam |"))
    assert lecam == f"| dcgan | lecam | 25.0 | - | 25.0 - 25.0 | {25.0 - statistics.fmean(newest):+.1f} | 1 | 100 |"


def test_small_data_tabulates_further_values_with_their_spread():
    from benchmarks import small_data

    records = [dict(small_record("cgan", "none", seed, 100.0 + seed), values={"fid_digits": 100.0 + seed, "class_accuracy": acc})
               for seed, acc in enumerate((0.2, 0.4, 0.9))]
    row = next(line for line in small_data.table(records, ["class_accuracy"]).splitlines() if line.startswith("| cgan |"))
    accuracy = [0.2, 0.4, 0.9]
    assert row.endswith(f"| {statistics.fmean(accuracy):.3f} ± {statistics.stdev(accuracy):.3f} (0.200, 0.400, 0.900) |")


# -------------------------------------------------------------------------------------- health checks
def test_health_checks_benchmark_finds_the_first_check_below_half_the_best_and_compares_the_detections():
    from benchmarks import health_checks

    lost = {"name": "dcgan", "data": "ring", "seed": 0, "steps": 3000, "extra": [], "seconds": 50.0,
            "effective_modes": [[500, 3.0], [600, 7.9], [700, 4.0], [800, 3.9], [900, 2.0]],
            "diversity_ratio": [[500, 0.5], [900, 0.2]], "events": [{"kind": "mode_collapse", "generator_step": 800, "evidence": {}}]}
    growing = dict(lost, seed=1, effective_modes=[[500, 2.0], [600, 9.0], [700, 20.0]], events=[])
    assert health_checks.lost_modes(lost) == (800, 3.9, 7.9)  # 4.0 is above half of 7.9, 3.9 below
    assert health_checks.lost_modes(growing) is None  # a slow start is no loss
    table = health_checks.table([lost, growing, dict(growing, seed=2, events=lost["events"])])
    assert "| dcgan | ring | 3000 | 0 | 7.9 (600) -> 2.0 | 0.20 | step 800: 3.9 of best 7.9 | mode_collapse @ 800 | 50 |" in table
    assert table.endswith("agrees with the effective-modes trajectory: 2 of 3")  # seed 2 fired without a loss
    # a generator that never spread over the modes, reported by the level floor: no loss, listed apart
    never_spread = dict(growing, seed=3, effective_modes=[[500, 1.2], [600, 1.1], [700, 1.3]], events=[
        {"kind": "mode_collapse", "generator_step": 700, "evidence": {
            "diversity_ratio": 0.3, "min_diversity_ratio": 0.1, "effective_modes": 1.3, "data_effective_modes": 23.7,
            "min_modes_of_data": 0.15, "checks_below_floor": 3}}])
    # and one reported by the floor that loses its modes later: the detection (one per kind) covers the loss
    spread_late_and_lost = dict(never_spread, seed=4, effective_modes=[[500, 1.2], [600, 1.1], [700, 1.3], [800, 9.0],
                                                                       [900, 3.0]])
    table = health_checks.table([lost, growing, never_spread, spread_late_and_lost])
    assert "agrees with the effective-modes trajectory: 4 of 4\n" in table
    assert table.endswith("detections by the level floor alone (a generator that never spread over the modes: no loss "
                          "is needed to agree): dcgan:ring seed 3 @ 700, dcgan:ring seed 4 @ 700")


def test_small_data_table_mode_only_reads(tmp_path, monkeypatch, capsys):
    from benchmarks import small_data

    out = tmp_path / "small.jsonl"
    out.write_text("".join(json.dumps(small_record("sngan", "none", seed, 30.0 + seed)) + "\n" for seed in range(2)))
    before = out.read_text()
    monkeypatch.setattr(small_data, "run_once", lambda *args, **kwargs: pytest.fail("--table must not train"))
    monkeypatch.setattr(sys, "argv", ["small_data.py", "--table", "--out", str(out)])
    small_data.main()
    assert "| sngan | none | 30.5 | 0.7 | 30.0 - 31.0 |  | 2 | 100 |" in capsys.readouterr().out
    assert out.read_text() == before


# ------------------------------------------------------------------------------------- cooldown_paired
def test_cooldown_paired_rows_record_precision_and_threads(tmp_path, monkeypatch):
    """Each branch's row says what it ran in: Lightning's resolved trainer.precision and torch's thread count."""
    import torch

    from benchmarks import cooldown_paired, reproduce

    class FakeGenerator:
        def sample(self, n, generator=None):
            return torch.zeros(n, 2)

    def fake_train(cfg, callbacks=()):
        if cfg.get("cpu_threads"):  # as train.train does
            torch.set_num_threads(int(cfg.cpu_threads))
        module = types.SimpleNamespace(generator_steps=int(cfg.generator_steps), generator=FakeGenerator(),
                                       sampling_generator=FakeGenerator())
        datamodule = types.SimpleNamespace(modes=torch.ones(25, 2))
        return {}, {"module": module, "datamodule": datamodule, "stopped_by": None,
                    "trainer": types.SimpleNamespace(precision="bf16-mixed")}

    monkeypatch.setattr(cooldown_paired, "train", fake_train)
    monkeypatch.setattr(reproduce, "score_with_protocol", lambda *args: ({"mode_coverage/modes": 25.0}, {}))
    monkeypatch.setattr(cooldown_paired, "mode_coverage", lambda x, modes, std: {"modes": 25, "high_quality": 0.97, "reverse_kl": 0.01})
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        rows = cooldown_paired.main(["--seed", "0", "--forks", "22000", "--out", str(tmp_path / "paired.jsonl"),
                                     "--", "cpu_threads=1"])
    finally:
        torch.set_num_threads(before)
    assert [r["branch"] for r in rows] == ["base", "cool22000->3e-05"]
    assert all(r["precision"] == "bf16-mixed" and r["threads"] == 1 for r in rows)
    written = [json.loads(line) for line in (tmp_path / "paired.jsonl").read_text().splitlines()]
    assert [(r["precision"], r["threads"]) for r in written] == [("bf16-mixed", 1)] * 2
