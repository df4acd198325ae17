"""benchmarks/reproduce.py without training: the table's arithmetic, diverged cells, cell skipping, the plan,
and the 10 x 10 grid's data config."""
from __future__ import annotations

import json
import math
import re
import statistics

import pytest

from benchmarks import reproduce
from benchmarks.reproduce import Cell

TOY_KEYS = ("mode_coverage/modes", "mode_coverage/high_quality", "mode_coverage/reverse_kl")


def toy_record(variant: str, seed: int, values=None, diverged: bool = False, steps: int = 100, data: str = "grid",
               train_seconds: float = 10.0, score_seconds: float | None = 0.5, extra=()) -> dict:
    return {"variant": variant, "data": data, "seed": seed, "steps": steps, "extra": list(extra),
            "generator_steps_done": steps, "diverged": diverged,
            "stopped_by": {"kind": "divergence", "generator_step": 7, "description": "divergence at generator step 7"}
            if diverged else None,
            "metric": "mode_coverage", "values": None if diverged else dict(zip(TOY_KEYS, values)),
            "train_seconds": train_seconds, "score_seconds": None if diverged else score_seconds}


def table_row(text: str, variant: str) -> list[str]:
    """The cells of our (not published) row of ``variant`` in a markdown table."""
    line = next(line for line in text.splitlines() if line.startswith("| ours") and f"| {variant} |" in line)
    return [cell.strip() for cell in line.strip("|").split("|")]


SEEDS = [(25, 0.98, 0.01), (24, 0.97, 0.03), (25, 0.99, 0.02)]


def test_table_mean_and_standard_error_over_seeds():
    records = [toy_record("r3gan", seed, values, train_seconds=t) for seed, (values, t) in enumerate(zip(SEEDS, (10, 30, 20)))]
    row = reproduce.rows_of(records, "grid")[0]
    for index, key in enumerate(TOY_KEYS):
        values = [v[index] for v in SEEDS]
        summary = row.summary(key)
        assert summary["mean"] == pytest.approx(statistics.fmean(values))
        assert reproduce.standard_error(summary) == pytest.approx(statistics.stdev(values) / math.sqrt(3))
    cells = table_row(reproduce.table(records, ["grid"]), "r3gan")
    # status, variant, seeds, diverged, modes, high quality %, reverse KL, generator steps, train s, score s
    assert cells == ["ours", "r3gan", "3", "0", "24.7 ± 0.3", "98.0 ± 0.6", "0.020 ± 0.006", "100", "20", "0.5"]


def test_diverged_seeds_are_counted_as_failures_not_averaged():
    records = [toy_record("gan", seed, values, train_seconds=t) for seed, (values, t) in enumerate(zip(SEEDS, (10, 30, 20)))]
    records.append(toy_record("gan", 3, diverged=True, train_seconds=2.0))
    row = reproduce.rows_of(records, "grid")[0]
    assert (len(row.runs), row.diverged, len(row.finished)) == (4, 1, 3)
    cells = table_row(reproduce.table(records, ["grid"]), "gan")
    assert cells[:7] == ["ours, FAILED: 1 of 4 diverged", "gan", "4", "1", "24.7 ± 0.3", "98.0 ± 0.6", "0.020 ± 0.006"]
    assert cells[8] == "15"  # the median wall time counts the diverged run too: 2, 10, 20, 30

    all_diverged = [toy_record("lsgan", seed, diverged=True) for seed in range(3)]
    cells = table_row(reproduce.table(all_diverged, ["grid"]), "lsgan")
    assert cells[:7] == ["ours, FAILED: 3 of 3 diverged", "lsgan", "3", "3", "diverged", "diverged", "diverged"]
    assert cells[9] == "-"  # never scored


def test_rows_split_by_budget_and_nan_values_are_reported():
    records = [toy_record("dcgan", 0, (20, 0.5, 0.4)), toy_record("dcgan", 1, (22, 0.0, float("nan"))),
               toy_record("dcgan", 0, (25, 0.9, 0.1), steps=2000)]
    rows = reproduce.rows_of(records, "grid")
    assert [(row.steps, len(row.runs)) for row in rows] == [(100, 2), (2000, 1)]
    text = reproduce.table(records, ["grid"])
    assert "0.400 (1 NaN)" in text  # reverse KL of a run without high-quality samples is NaN: left out, counted
    assert "| ours | dcgan | 1 | 0 | 25.0 | 90.0 | 0.100 | 2,000 |" in text  # one seed: no standard error


def test_published_rows_are_printed_beside_ours_with_sources():
    text = reproduce.table([toy_record("r3gan", 0, SEEDS[0])], ["grid"])
    assert "| PacGAN4 (PacGAN T1) | 10 | - | 24.8 ± 0.2 | 93.6 ± 0.6 | 0.04 ± 0.01 |" in text
    assert "| WGAN-GP (GDPP T1) | - | - | 24.2 | 28.7 | - | 25k iterations, batch 512 |" in text
    for published in reproduce.PUBLISHED:
        assert published.data in reproduce.DATASETS and published.source.startswith("https://")
        assert set(published.values) <= {key.split("/", 1)[1] for key in reproduce.metric_keys(reproduce.DATASETS[published.data].metric)}
        assert all(re.fullmatch(r"\d+(\.\d+)?(±\d+(\.\d+)?)?", value) for value in published.values.values()), published


def test_plan_and_its_pieces():
    cells = reproduce.plan_cells(None, None, None)
    assert len(cells) == 4 * 5 + 2 * 6 * 3 + 2 * 3  # r3gan 5 seeds everywhere; 6 variants x 3 seeds on ring, grid; 2 on stacked
    assert {c.variant for c in cells if c.data == "stacked"} == {"r3gan", "wgan_gp", "dcgan"}
    assert not {"cgan", "acgan"} & {c.variant for c in cells}
    assert {(c.data, c.seed) for c in reproduce.plan_cells(["r3gan"], None, None)} == \
        {(d, s) for d in reproduce.DATASETS for s in range(5)}
    assert reproduce.plan_cells(["sngan"], ["stacked"], [7]) == [Cell("sngan", "stacked", 7)]  # both given: their pairs
    assert [c.variant for c in reproduce.plan_cells(None, ["grid10"], [0])] == ["r3gan"]


def test_cells_already_in_the_results_file_are_skipped(tmp_path, monkeypatch):
    out = tmp_path / "results.jsonl"
    out.write_text(json.dumps(toy_record("wgan_gp", 0, SEEDS[0], steps=50, data="ring")) + "\n")
    ran = []

    def fake_run_cell(cell, cfg, overrides, extra):
        ran.append(cell)
        assert f"model={cell.variant}" in overrides and "data=toy2d_ring" in overrides and "generator_steps=50" in overrides
        return toy_record(cell.variant, cell.seed, SEEDS[1], steps=int(cfg.generator_steps), data=cell.data, extra=extra)

    monkeypatch.setattr(reproduce, "run_cell", fake_run_cell)
    cells = [Cell("wgan_gp", "ring", 0), Cell("wgan_gp", "ring", 1)]
    reproduce.run(cells, 50, [], out)
    assert ran == [Cell("wgan_gp", "ring", 1)]
    assert [r["seed"] for r in reproduce.read_records(out)] == [0, 1]
    reproduce.run(cells, 50, [], out)  # everything there now
    assert len(ran) == 1
    reproduce.run(cells[:1], 50, ["model.ema_decay=0.999"], out)  # other extra overrides: another cell
    assert len(ran) == 2
    reproduce.run(cells, 50, [], out, rerun=True)
    assert len(ran) == 4

    monkeypatch.setattr(reproduce, "run", lambda *args, **kwargs: pytest.fail("--table must not train"))
    text = reproduce.main(["--table", "--data", "ring", "--variants", "wgan_gp", "--out", str(out)])
    assert "| ours | wgan_gp | 2 | 0 |" in text  # seeds 0, 1, each once (its rerun's record); the extra-override run is left out


def test_grid10_composes_to_100_modes_with_std_003():
    from gan.metrics import MetricSuite
    from gan.utils.instantiate import build

    cfg = reproduce.compose_run(reproduce.cell_overrides(Cell("r3gan", "grid10", 0), None, []))
    datamodule = build(cfg.data)
    datamodule.setup("fit")
    assert tuple(datamodule.modes.shape) == (100, 2) and datamodule.std == pytest.approx(0.03)
    axis = sorted(set(datamodule.modes[:, 0].tolist()))
    assert axis == reproduce.GRID10_VALUES and all(b - a == 2 for a, b in zip(axis, axis[1:]))
    # the benchmark's protocol on real samples: every mode, ~98.9 % within 3 std (1 - e^-4.5)
    suite = MetricSuite(compute={"mode_coverage": reproduce.PROTOCOLS["mode_coverage"]})
    real = datamodule.train_set.tensors[0][:2500]
    values, protocol = suite.evaluate([real], datamodule)
    assert values["mode_coverage/modes"] == 100
    assert values["mode_coverage/high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    assert protocol["metrics"]["mode_coverage"]["num_fake"] == 2500


def test_cooldown_paired_branches_resume_the_base_trajectory(tmp_path):
    """benchmarks/cooldown_paired.py: a branch whose cool-down ends at the held learning rate is the base run
    (resume from the fork is exact, the premise of the paired comparison); a real cool-down is another run."""
    from benchmarks import cooldown_paired

    tiny = ["generator_steps=30", "burn_in=10", "data.batch_size=64", "model.generator.width=8",
            "model.discriminator.width=8", "model.discriminator.fourier_features=4"]
    held = cooldown_paired.main(["--seed", "3", "--forks", "20", "--end", "3e-4", "--out", str(tmp_path / "a.jsonl"), "--", *tiny])
    cooled = cooldown_paired.main(["--seed", "3", "--forks", "20", "--end", "1e-6", "--out", str(tmp_path / "b.jsonl"), "--", *tiny])
    assert [r["branch"] for r in held] == ["base", "cool20->0.0003"] and all(r["steps"] == 30 for r in held + cooled)
    assert held[1]["resumed_at"] == cooled[1]["resumed_at"] == 20  # the branches trained steps 20-30 only
    same = lambda a, b: json.dumps(a) == json.dumps(b)  # noqa: E731 - NaN (no mode captured) equals NaN here
    assert same(held[1]["protocol"], held[0]["protocol"]) and same(held[1]["raw/20000"], held[0]["raw/20000"])
    assert same(cooled[0], {**held[0], "seconds": cooled[0]["seconds"]})  # the same base run
    assert cooled[1]["raw/median_distance_std"] != held[1]["raw/median_distance_std"]
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 2
    # what each branch ran in: the grid preset's cpu_threads and Lightning's resolved precision
    assert all(r["threads"] == 2 and r["precision"] in ("32-true", "bf16-mixed") for r in held + cooled)


def test_the_grid_preset_cools_the_learning_rate_down_over_its_last_8000_steps():
    from hydra.utils import instantiate

    cfg = reproduce.compose_run(reproduce.cell_overrides(Cell("r3gan", "grid", 0), None, []))
    lr = instantiate(cfg.model.schedules.lr.value)
    assert int(cfg.generator_steps) - lr.then_from == lr.then.steps == 8000
    assert lr(18000) == lr(22000) == pytest.approx(3e-4) and lr(30000) == pytest.approx(3e-5)
    ring = reproduce.compose_run(reproduce.cell_overrides(Cell("r3gan", "ring", 0), None, []))
    assert instantiate(ring.model.schedules.lr.value).then is None  # measured without it


def test_a_run_in_another_precision_is_another_cell_and_row(tmp_path, monkeypatch):
    """A preset's precision may depend on the machine (bf16 where native), so the results file keys and the
    table groups runs by it; records without one ran in 32-true."""
    out = tmp_path / "results.jsonl"
    out.write_text(json.dumps(dict(toy_record("wgan_gp", 0, SEEDS[0], steps=50, data="ring"), precision="bf16-mixed")) + "\n")
    ran = []

    def fake_run_cell(cell, cfg, overrides, extra):
        ran.append(cell)
        return toy_record(cell.variant, cell.seed, SEEDS[1], steps=int(cfg.generator_steps), data=cell.data, extra=extra)

    monkeypatch.setattr(reproduce, "run_cell", fake_run_cell)
    reproduce.run([Cell("wgan_gp", "ring", 0)], 50, [], out)  # composes to 32-true: not the bf16 cell
    assert ran == [Cell("wgan_gp", "ring", 0)]
    rows = reproduce.rows_of(reproduce.read_records(out), "ring")
    assert [(row.label, len(row.runs)) for row in rows] == [("wgan_gp", 1), ("wgan_gp (bf16-mixed)", 1)]
    text = reproduce.table(reproduce.read_records(out), ["ring"])
    assert table_row(text, "wgan_gp (bf16-mixed)")[4] == "25.0"  # the bf16 run's own values
    assert table_row(text, "wgan_gp")[4] == "24.0"


def test_a_run_on_another_number_of_threads_is_another_cell_and_row(tmp_path, monkeypatch):
    """Wall time depends on the thread count (``cpu_threads``, else torch's default for the machine), so the results
    file keys and the table group runs by it; records without one count as one thread."""
    import torch

    out = tmp_path / "results.jsonl"
    machine_default = ["cpu_threads=null"]  # (the toy presets set 1)
    out.write_text(json.dumps(toy_record("wgan_gp", 0, SEEDS[0], steps=50, data="ring", extra=machine_default)) + "\n")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # torch's default on a 2-core machine
    ran = []

    def fake_run_cell(cell, cfg, overrides, extra):
        ran.append(cell)
        record = toy_record(cell.variant, cell.seed, SEEDS[1], steps=int(cfg.generator_steps), data=cell.data, extra=extra)
        return dict(record, threads=torch.get_num_threads())

    monkeypatch.setattr(reproduce, "run_cell", fake_run_cell)
    for _ in range(2):  # the second time the two-thread run is in the file: skipped
        reproduce.run([Cell("wgan_gp", "ring", 0)], 50, machine_default, out)
    assert ran == [Cell("wgan_gp", "ring", 0)]  # not skipped for the record without a thread count
    rows = reproduce.rows_of(reproduce.read_records(out), "ring")
    assert [(row.label, len(row.runs)) for row in rows] == [("wgan_gp", 1), ("wgan_gp (2 threads)", 1)]
    text = reproduce.table(reproduce.read_records(out), ["ring"])
    assert table_row(text, "wgan_gp (2 threads)")[4] == "24.0" and table_row(text, "wgan_gp")[4] == "25.0"


def test_a_rerun_counts_its_seed_once_with_the_newest_record():
    """``--rerun`` appends a cell again: the table keeps the newest record of each seed (by ``finished``, else the later
    line) and counts seeds, so a rerun neither shrinks the standard error nor counts as another seed."""
    records = [dict(toy_record("r3gan", seed, values), finished=f"2026-12-01 10:0{seed}:00") for seed, values in enumerate(SEEDS)]
    records.append(dict(toy_record("r3gan", 1, (25, 0.99, 0.02)), finished="2026-12-02 09:00:00"))  # seed 1 run again
    records.append(dict(toy_record("r3gan", 2, (1, 0.01, 9.0)), finished="2026-11-30 09:00:00"))  # older, appended late
    row = reproduce.rows_of(records, "grid")[0]
    assert sorted(r["seed"] for r in row.runs) == [0, 1, 2]
    newest = [SEEDS[0], (25, 0.99, 0.02), SEEDS[2]]
    summary = row.summary("mode_coverage/high_quality")
    assert summary["n"] == 3 and summary["mean"] == pytest.approx(statistics.fmean(v[1] for v in newest))
    assert reproduce.standard_error(summary) == pytest.approx(statistics.stdev(v[1] for v in newest) / math.sqrt(3))
    assert table_row(reproduce.table(records, ["grid"]), "r3gan")[:5] == ["ours", "r3gan", "3", "0", "25.0 ± 0.0"]
    # without timestamps the later line is the newer one
    plain = [toy_record("gan", 0, SEEDS[0]), toy_record("gan", 0, SEEDS[1])]
    assert [r["values"]["mode_coverage/modes"] for r in reproduce.rows_of(plain, "grid")[0].runs] == [24]


SCALED_GRID = ["data.grid_values=[-4,-3.1111111,-2.2222222,-1.3333333,-0.4444444,0.4444444,1.3333333,2.2222222,3.1111111,4]",
               "data.std=0.0133333"]


def test_runs_of_a_rescaled_grid_are_titled_with_their_composed_data():
    """``--data grid -- data.grid_values=[...] data.std=...`` (or ``experiment=grid10``) trains a 100-mode grid: its rows
    get a section titled with the composed mode count and std, not the 25-mode grid's, and no published rows."""
    scaled = [dict(toy_record("r3gan", seed, (50, 0.5, 1.9), extra=SCALED_GRID),
                   overrides=["model=r3gan", "data=toy2d_grid", f"seed={seed}", *SCALED_GRID]) for seed in range(2)]
    experiment = [toy_record("r3gan", seed, (96, 0.9, 0.1), steps=90000, extra=["experiment=grid10"]) for seed in range(2)]
    plain = [toy_record("gan", 0, SEEDS[0])]
    text = reproduce.table(scaled + experiment + plain, ["grid"])
    sections = {part.splitlines()[0]: part for part in text.split("\n\n### ")}
    assert len(sections) == 2, list(sections)
    default = next(part for title, part in sections.items() if "25 Gaussians at {-4,-2,0,2,4}^2, std 0.05" in title)
    scaled_section = next(part for title, part in sections.items() if "100 Gaussians, std 0.0133333" in title)
    assert "modes (of 25)" in default and "| gan |" in default and "[published]" in default and "| r3gan |" not in default
    assert "modes (of 100)" in scaled_section and "[published]" not in scaled_section
    assert "| ours | r3gan | 2 | 0 | 50.0 ± 0.0 |" in scaled_section and "| ours | r3gan | 2 | 0 | 96.0 ± 0.0 |" in scaled_section
    # grid10's own data set keeps its title: its composed data is the one it describes
    grid10 = reproduce.table([toy_record("r3gan", 0, (90, 0.9, 0.1), data="grid10")], ["grid10"])
    assert grid10.startswith("### grid10: 10 x 10 grid: 100 Gaussians") and grid10.count("### ") == 1


def test_each_cell_restores_the_thread_count_and_records_its_own(tmp_path, monkeypatch):
    """train() sets torch's thread count to cfg.cpu_threads and leaves it: run_cell restores it, so a cell without
    cpu_threads runs on (and records) the process's count whatever ran before it."""
    import sys
    import types

    import torch
    from omegaconf import OmegaConf

    def fake_train(cfg):  # what train.train does with the threads
        if cfg.get("cpu_threads"):
            torch.set_num_threads(int(cfg.cpu_threads))
        module = types.SimpleNamespace(generator_steps=int(cfg.generator_steps), generator=None, sampling_generator=None,
                                       provenance=None)
        return {}, {"module": module, "stopped_by": None, "datamodule": None, "trainer": types.SimpleNamespace(precision="32-true")}

    monkeypatch.setitem(sys.modules, "train", types.SimpleNamespace(train=fake_train))
    monkeypatch.setattr(reproduce, "score_with_protocol", lambda cfg, module, datamodule, metric: (dict(zip(TOY_KEYS, SEEDS[0])), {}))
    monkeypatch.setattr(reproduce, "compose_run", lambda overrides: OmegaConf.create(
        {"generator_steps": 10, "paths": {}, "trainer": {"precision": "32-true"},
         "cpu_threads": 1 if "model=r3gan" in overrides else None}))
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        out = tmp_path / "results.jsonl"
        records = reproduce.run([Cell("r3gan", "ring", 0), Cell("wgan_gp", "ring", 0)], None, [], out)
        assert [r["threads"] for r in records] == [1, 3]
        assert torch.get_num_threads() == 3
        rows = reproduce.rows_of(reproduce.read_records(out), "ring")
        assert [row.label for row in rows] == ["r3gan", "wgan_gp (3 threads)"]
    finally:
        torch.set_num_threads(before)
