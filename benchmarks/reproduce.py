"""Reproduce the published mode-coverage tables: PacGAN's 2D ring and grid, a 10 x 10 grid, Stacked MNIST.

    python benchmarks/reproduce.py                                   # every cell of the plan below (hours on 2 cores)
    python benchmarks/reproduce.py --variants r3gan --data grid      # one piece: r3gan on the grid, 5 seeds
    python benchmarks/reproduce.py --data ring --seeds 0             # every variant of the plan on the ring, seed 0
    python benchmarks/reproduce.py --variants dcgan --data stacked --steps 20 -- model.generator.width=4
    python benchmarks/reproduce.py --table                           # only print the table of the results file

A cell is (variant, data set, seed). Data sets (Hydra overrides of each in ``DATASETS``):

- ``ring``: ``data=toy2d_ring``, 8 Gaussians on the unit circle, std 0.01 (PacGAN, VEEGAN);
- ``grid``: ``data=toy2d_grid``, 25 Gaussians at {-4,-2,0,2,4}^2, std 0.05 (PacGAN, VEEGAN);
- ``grid10``: ``data=toy2d_grid`` with 10 x 10 means at {-9,-7,...,9}^2 and std 0.03, a harder toy (the
  issue's "ParticleGAN" 10 x 10 grid; no paper stating its spacing was found, so it keeps the 25-grid's
  spacing of 2);
- ``stacked``: ``data=stacked_mnist data.source=digits``, Stacked MNIST built from the 5,000 embedded MNIST
  digits (the papers stack MNIST's 60,000: the same 1,000 modes, far fewer distinct images, so the numbers
  are not comparable one to one).

The plan (``PLAN``): r3gan on every data set; every other shipped unconditional variant (gan, dcgan, wgan,
wgan_gp, lsgan, sngan) on ring and grid; wgan_gp and dcgan on stacked. r3gan runs seeds 0-4, the others
0-2 (``--seeds`` sets them for all). ``--variants`` alone keeps the plan's data sets of those variants,
``--data`` alone the plan's variants of those data sets, both together every combination of them.

Each run is a real ``train.train`` of the composed config (``model=<variant>``, the data set's overrides,
``seed=<seed>``, ``logger=none``, only the health-check callback: no sample grids, metrics during training
or checkpoints) at the composed budget: ``generator_steps`` of the per-data preset
(conf/preset/tuned/<model>/<data>.yaml) unless ``--steps`` is given; further Hydra overrides after ``--``. Then
the final sampling generator (the EMA copy when EMA is on) is scored once with the metric registry under the
papers' protocol (``PROTOCOLS``): on the toys ``mode_coverage`` (PacGAN: 2,500 samples, a sample is high
quality within 3 std of its nearest mode, modes captured, reverse KL of the high-quality mode histogram to
uniform), on Stacked MNIST ``stacked_modes`` (26,000 samples, modes of 1,000 read by the shipped digit
classifier channel by channel, KL of the mode histogram to uniform). A run the health check stops for
divergence is recorded as diverged and not scored; the table counts it as a failed seed of its cell.

Every run appends one JSON line to ``--out`` (default benchmarks/results/reproduce.jsonl): the cell, the
generator steps configured and done, the full list of overrides, the values and protocol, the wall time of
training and of scoring, and how training stopped. A cell already in the file (same variant, data set,
seed, generator steps and extra overrides) is skipped unless ``--rerun``, so the benchmark runs in pieces.

The table (markdown, one section per data set): one row per (variant, generator steps) with the mean and
standard error over the seeds that did not diverge (from ``gan.metrics.summary``, the helpers evaluate.py
uses), the number of seeds, how many diverged, and the median wall time per run; below them the published
rows of ``PUBLISHED`` with their budgets. A cell run again (``--rerun``) counts once, with its newest record.
Runs whose overrides change the toy's data (``data.grid_values``, ``data.std``, ``experiment=grid10``) get a
section of their own, titled with the mode count and std of the data they composed to, without published rows.
Each run records the torch thread count it trained with (``cpu_threads``, else the process's own count, which is
restored after every cell).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.utils.config import PROJECT_ROOT  # noqa: E402

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "reproduce.jsonl"


@dataclass(frozen=True)
class DataSet:
    title: str
    overrides: tuple[str, ...]
    metric: str  # the registry's metric that scores it (PROTOCOLS holds its options)
    modes: int  # for the table's header
    std: float | None = None  # of each Gaussian (the 2D toys): with ``modes``, what ``title`` describes


GRID10_VALUES = [-9, -7, -5, -3, -1, 1, 3, 5, 7, 9]  # 10 means per axis, the 25-grid's spacing of 2
DATASETS: dict[str, DataSet] = {
    "ring": DataSet("2D ring: 8 Gaussians on the unit circle, std 0.01", ("data=toy2d_ring",), "mode_coverage", 8, 0.01),
    "grid": DataSet("2D grid: 25 Gaussians at {-4,-2,0,2,4}^2, std 0.05", ("data=toy2d_grid",), "mode_coverage", 25, 0.05),
    "grid10": DataSet("10 x 10 grid: 100 Gaussians at {-9,-7,...,9}^2, std 0.03",
                      ("data=toy2d_grid", f"data.grid_values=[{','.join(map(str, GRID10_VALUES))}]", "data.std=0.03"),
                      "mode_coverage", 100, 0.03),
    "stacked": DataSet("Stacked MNIST (5,000 digits): built from the 5,000 embedded MNIST digits, not MNIST's 60,000 "
                       "as in the papers, so not comparable one to one", ("data=stacked_mnist", "data.source=digits"),
                       "stacked_modes", 1000),
}
# the papers' protocols, as options of the registry's metrics (metrics.compute)
PROTOCOLS: dict[str, dict[str, Any]] = {
    "mode_coverage": {"num_samples": 2500, "std_multiple": 3.0},  # PacGAN sec. 5.1 (after VEEGAN)
    "stacked_modes": {"num_samples": 26000},  # VEEGAN / PacGAN: 26,000 samples
}
SHIPPED = ("gan", "dcgan", "wgan", "wgan_gp", "lsgan", "sngan")  # the unconditional variants besides r3gan
PLAN: dict[str, tuple[str, ...]] = {
    "ring": ("r3gan", *SHIPPED),
    "grid": ("r3gan", *SHIPPED),
    "grid10": ("r3gan",),
    "stacked": ("r3gan", "wgan_gp", "dcgan"),
}
DEFAULT_SEEDS = {"r3gan": 5}  # the others: 3
# Only health checks: what reports a diverged run (train() returns it as ``stopped_by``). Lightning's own
# progress bar, model summary and checkpoint callback are off too.
RUN_OVERRIDES = ("logger=none", "callbacks=gan_health", "+trainer.enable_progress_bar=false",
                 "+trainer.enable_model_summary=false", "+trainer.enable_checkpointing=false")
# how the table shows a metric's values (the key after "<metric>/"): label, scale, decimals
DISPLAY = {"modes": ("modes", 1, 1), "high_quality": ("high quality %", 100, 1), "reverse_kl": ("reverse KL", 1, 3),
           "kl": ("KL", 1, 3)}


# ------------------------------------------------------------------------------------- published rows
@dataclass(frozen=True)
class Published:
    """A published row. ``values``: metric value name (``modes``, ``high_quality``, ...) -> the number as the
    paper prints it, ``mean`` or ``mean±standard error``, in the table's units (high quality in %)."""

    data: str
    method: str
    values: dict[str, str]
    trials: str  # runs averaged ("" when the table does not say)
    budget: str  # "" when no source states it
    source: str


def _toy(data: str, method: str, modes: str, high_quality: str, reverse_kl: str | None, trials: str, budget: str,
         source: str) -> Published:
    values = {"modes": modes, "high_quality": high_quality, **({"reverse_kl": reverse_kl} if reverse_kl else {})}
    return Published(data, method, values, trials, budget, source)


# PacGAN (Lin et al. 2018), Table 1 as the authors' repository shows it (this version has no minibatch
# discrimination row): https://github.com/fjxmlzn/PacGAN/blob/master/synthetic_data_experiments/results/Table1.png
# "averaged over 10 trials shown with the standard error". Budget from the released configs,
# https://github.com/fjxmlzn/PacGAN/blob/master/synthetic_data_experiments/2DGrid_GAN%26PacGAN/config.py (and
# 2DRing_GAN&PacGAN/config.py): num_epoch 400 over num_sample 100,000 at batch_size 100.
PACGAN_T1 = "https://github.com/fjxmlzn/PacGAN/blob/master/synthetic_data_experiments/results/Table1.png"
PACGAN_TOY_BUDGET = "400 epochs of 100k points, batch 100 (400k iterations)"
# VEEGAN (Srivastava et al. 2017), Table 1 and Table 2 as the authors' project page shows them:
# https://github.com/akashgit/VEEGAN/blob/master/tab.png (GDPP's Table 1 repeats these four rows). No
# standard errors, trial counts or budgets in the table.
VEEGAN_TABLES = "https://github.com/akashgit/VEEGAN/blob/master/tab.png"
# GDPP (Elfeki et al. 2019), Table 1 as the authors' repository shows it:
# https://github.com/M-Elfeki/GDPP/blob/master/Figures/Fig_2.png. Budget from the released script
# https://github.com/M-Elfeki/GDPP/blob/master/gdppgan_Synthetic.py: max_iter 25,000 at batch_size 512.
GDPP_T1 = "https://github.com/M-Elfeki/GDPP/blob/master/Figures/Fig_2.png"
GDPP_BUDGET = "25k iterations, batch 512"
# PacGAN Table 2 and 3 (Stacked MNIST), as the authors' repository shows them:
# https://github.com/fjxmlzn/PacGAN/blob/master/stacked_MNIST_experiments/results/Table2.png ("averaged over 10
# trials, with standard error"; the first four rows quote VEEGAN) and .../Table3.png (50 trials, standard error).
# Budgets from the released configs: stacked_MNIST_experiments/VEEGAN_experiment/config.py (epoch 50 over
# num_training_sample 128,000 at batch_size 64; 26,000 test samples; its model.py runs the G step twice per
# iteration) and unrolled_GAN_experiment/D=0.25G/config.py, D=0.5G/config.py (one epoch of 500,000 x 128 samples
# at batch_size 128; 25,600 test samples).
PACGAN_T2 = "https://github.com/fjxmlzn/PacGAN/blob/master/stacked_MNIST_experiments/results/Table2.png"
PACGAN_T3 = "https://github.com/fjxmlzn/PacGAN/blob/master/stacked_MNIST_experiments/results/Table3.png"
PACGAN_T2_BUDGET = "50 epochs of 128k, batch 64 (100k iterations)"
PACGAN_T3_BUDGET = "500k iterations, batch 128"

PUBLISHED: tuple[Published, ...] = (
    # PacGAN Table 1: modes, high quality %, reverse KL; mean ± standard error over 10 trials
    *(_toy(data, f"{method} (PacGAN T1)", modes, hq, kl, "10", PACGAN_TOY_BUDGET, PACGAN_T1) for data, method, modes, hq, kl in (
        ("ring", "GAN", "6.3±0.5", "98.2±0.2", "0.45±0.09"),
        ("ring", "ALI", "6.6±0.3", "97.6±0.4", "0.36±0.04"),
        ("ring", "PacGAN2", "7.9±0.1", "95.6±2.0", "0.07±0.03"),
        ("ring", "PacGAN3", "7.8±0.1", "97.7±0.3", "0.10±0.02"),
        ("ring", "PacGAN4", "7.8±0.1", "95.9±1.4", "0.07±0.02"),
        ("grid", "GAN", "17.3±0.8", "94.8±0.7", "0.70±0.07"),
        ("grid", "ALI", "24.1±0.4", "95.7±0.6", "0.14±0.03"),
        ("grid", "PacGAN2", "23.8±0.7", "91.3±0.8", "0.13±0.04"),
        ("grid", "PacGAN3", "24.6±0.4", "94.2±0.4", "0.06±0.02"),
        ("grid", "PacGAN4", "24.8±0.2", "93.6±0.6", "0.04±0.01"))),
    # VEEGAN Table 1: modes, high quality %
    *(_toy(data, f"{method} (VEEGAN T1)", modes, hq, None, "", "", VEEGAN_TABLES) for data, method, modes, hq in (
        ("ring", "GAN", "1", "99.3"), ("ring", "ALI", "2.8", "0.13"), ("ring", "Unrolled GAN", "7.6", "35.6"),
        ("ring", "VEEGAN", "8", "52.9"), ("grid", "GAN", "3.3", "0.5"), ("grid", "ALI", "15.8", "1.6"),
        ("grid", "Unrolled GAN", "23.6", "16"), ("grid", "VEEGAN", "24.6", "40"))),
    # GDPP Table 1: its own two rows (the others are VEEGAN's)
    *(_toy(data, f"{method} (GDPP T1)", modes, hq, None, "", GDPP_BUDGET, GDPP_T1) for data, method, modes, hq in (
        ("ring", "WGAN-GP", "6.8", "59.6"), ("ring", "GDPP-GAN", "8.0", "71.7"),
        ("grid", "WGAN-GP", "24.2", "28.7"), ("grid", "GDPP-GAN", "24.8", "68.5"))),
    # Stacked MNIST (on MNIST's 60,000 digits): modes, KL
    *(Published("stacked", f"{method} (VEEGAN T2)", {"modes": modes, "kl": kl}, "", "", VEEGAN_TABLES) for method, modes, kl in (
        ("DCGAN", "99", "3.4"), ("ALI", "16", "5.4"), ("Unrolled GAN", "48.7", "4.32"), ("VEEGAN", "150", "2.95"))),
    *(Published("stacked", f"{method} (PacGAN T2)", {"modes": modes, "kl": kl}, "10", PACGAN_T2_BUDGET, PACGAN_T2)
      for method, modes, kl in (
        ("DCGAN (their implementation)", "78.9±6.46", "4.50±0.127"),
        ("PacDCGAN2", "1000.0±0.00", "0.06±0.003"),
        ("PacDCGAN3", "1000.0±0.00", "0.06±0.003"),
        ("PacDCGAN4", "1000.0±0.00", "0.07±0.005"))),
    # PacGAN Table 3: a discriminator 1/4 or 1/2 the size of the generator
    *(Published("stacked", f"{method}, D 1/{size} of G (PacGAN T3)", {"modes": modes, "kl": kl}, "50", PACGAN_T3_BUDGET,
                PACGAN_T3) for size, method, modes, kl in (
        (4, "DCGAN", "30.6±20.73", "5.99±0.42"),
        (4, "DCGAN (their implementation)", "78.5±17.56", "5.21±0.19"),
        (4, "PacDCGAN2", "484.5±32.99", "2.61±0.22"),
        (4, "PacDCGAN3", "601.3±32.18", "2.00±0.17"),
        (4, "PacDCGAN4", "667.4±29.00", "1.81±0.15"),
        (2, "DCGAN", "628.0±140.9", "2.58±0.75"),
        (2, "DCGAN (their implementation)", "487.7±34.59", "2.24±0.15"),
        (2, "PacDCGAN2", "840.7±15.92", "1.00±0.05"),
        (2, "PacDCGAN3", "866.6±12.10", "0.90±0.04"),
        (2, "PacDCGAN4", "820.2±25.50", "1.15±0.14"))),
)


# --------------------------------------------------------------------------------------------- cells
@dataclass(frozen=True)
class Cell:
    variant: str
    data: str
    seed: int


def default_seeds(variant: str) -> list[int]:
    return list(range(DEFAULT_SEEDS.get(variant, 3)))


def plan_cells(variants: Sequence[str] | None, datasets: Sequence[str] | None,
               seeds: Sequence[int] | None) -> list[Cell]:
    """The cells to run: the plan, narrowed by ``variants`` and/or ``datasets`` (both: all their pairs)."""
    if variants and datasets:
        pairs = [(v, d) for d in datasets for v in variants]
    else:
        pairs = [(v, d) for d in (datasets or DATASETS) for v in PLAN[d] if not variants or v in variants]
    return [Cell(v, d, s) for v, d in pairs for s in (seeds if seeds is not None else default_seeds(v))]


def cell_overrides(cell: Cell, steps: int | None, extra: Sequence[str]) -> list[str]:
    """The Hydra overrides of one run (the output directory is set when it runs)."""
    return [f"model={cell.variant}", *DATASETS[cell.data].overrides, f"seed={cell.seed}", *RUN_OVERRIDES,
            *([f"generator_steps={steps}"] if steps is not None else []), *extra]


def compose_run(overrides: Sequence[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "paths.output_dir=unset"])
    GlobalHydra.instance().clear()
    return cfg


def record_precision(record: dict) -> str:
    """The run's ``trainer.precision``; records written before 2026-12-03 had none, and all ran in 32-true."""
    return record.get("precision", "32-true")


def record_threads(record: dict) -> int:
    """The run's torch thread count (wall time depends on it, and r3gan's grid preset sets it); records written
    before 2026-12-03 had none and count as one thread (most of them ran with one)."""
    return int(record.get("threads") or 1)


def record_key(record: dict) -> tuple:
    return (record["variant"], record["data"], record["seed"], record["steps"], tuple(record["extra"]),
            record_precision(record), record_threads(record))


def run_cell(cell: Cell, cfg, overrides: list[str], extra: Sequence[str]) -> dict:
    """Train one cell's composed config, score its final sampling generator; returns the JSON record."""
    import torch
    from omegaconf import open_dict

    from gan.callbacks.gan_health import describe
    from train import train

    metric = DATASETS[cell.data].metric
    # train() sets torch's thread count to cfg.cpu_threads and leaves it so: restored after the cell, or a cell
    # without cpu_threads would run (and be recorded) on the previous cell's count
    threads_before = torch.get_num_threads()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with open_dict(cfg):
                cfg.paths.output_dir = str(Path(tmp) / "run")
            started = time.time()
            _, objects = train(cfg)
            train_seconds = time.time() - started
        threads = torch.get_num_threads()  # what the cell trained (and is scored) with
        module, stopped_by = objects["module"], objects["stopped_by"]
        diverged = stopped_by is not None and stopped_by["kind"] == "divergence"
        values, protocol, score_seconds = None, None, None
        if not diverged:
            started = time.time()
            values, protocol = score_with_protocol(cfg, module, objects["datamodule"], metric)
            score_seconds = time.time() - started
    finally:
        torch.set_num_threads(threads_before)
    return {
        "variant": cell.variant, "data": cell.data, "seed": cell.seed, "steps": int(cfg.generator_steps),
        "extra": list(extra), "generator_steps_done": int(module.generator_steps),
        "ema": module.sampling_generator is not module.generator, "diverged": diverged,
        "stopped_by": None if stopped_by is None else {"kind": stopped_by["kind"], "generator_step": stopped_by["generator_step"],
                                                       "description": describe(stopped_by)},
        "metric": metric, "values": values, "protocol": protocol,
        "train_seconds": round(train_seconds, 1), "score_seconds": None if score_seconds is None else round(score_seconds, 2),
        "precision": str(objects["trainer"].precision), "threads": threads, "overrides": overrides,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        # the code (commit, uncommitted changes' hash), libraries and machine of the run: rows compare seeds run by
        # different code only knowingly (records before 2026-12-07 have none)
        "provenance": module.provenance,
    }


def score_with_protocol(cfg, module, datamodule, metric: str) -> tuple[dict, dict]:
    """``metric``'s values for ``module``'s sampling generator (the EMA copy when EMA is on) under the paper's
    protocol (``PROTOCOLS``), with the run's metric settings; and the protocol as the registry records it."""
    from omegaconf import OmegaConf

    from gan.metrics import MetricSuite
    from gan.metrics.cache import data_identity

    settings = {**OmegaConf.to_container(cfg.metrics, resolve=True), "compute": {metric: PROTOCOLS[metric]}}
    suite = MetricSuite.from_config(settings).to(module.device)
    return suite.evaluate_generator(module.sampling_generator, datamodule,
                                    data_identity(OmegaConf.to_container(cfg.data, resolve=True)))


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(cells: Iterable[Cell], steps: int | None, extra: Sequence[str], out: Path, rerun: bool = False) -> list[dict]:
    """Runs every cell not yet in ``out`` (all with ``rerun``), appending each record as it finishes."""
    import torch
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {record_key(r) for r in read_records(out)}
    records = []
    for cell in cells:
        overrides = cell_overrides(cell, steps, extra)
        # the budget (the preset's generator_steps unless --steps) and the precision (a preset's may depend on
        # the machine) are part of the key
        cfg = compose_run(overrides)
        budget, precision = int(cfg.generator_steps), str(cfg.trainer.precision)
        threads = int(cfg.get("cpu_threads") or torch.get_num_threads())
        key = record_key({"variant": cell.variant, "data": cell.data, "seed": cell.seed, "steps": budget,
                          "extra": extra, "precision": precision, "threads": threads})
        if key in done and not rerun:
            print(f"skip {cell.variant} {cell.data} seed {cell.seed} ({budget} generator steps, {precision}, "
                  f"{threads} thread(s)): already in {out}", flush=True)
            continue
        record = run_cell(cell, cfg, overrides, extra)
        with open(out, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        records.append(record)
        print(f"{cell.variant} {cell.data} seed {cell.seed}: {describe_record(record)}", flush=True)
    return records


def describe_record(record: dict) -> str:
    if record["diverged"]:
        outcome = f"DIVERGED ({record['stopped_by']['description']})"
    else:
        outcome = ", ".join(f"{name.split('/', 1)[1]} {value:.4g}" for name, value in record["values"].items())
    score = "" if record["score_seconds"] is None else f" + {record['score_seconds']:.1f} s scoring"
    return f"{outcome}; {record['generator_steps_done']} generator steps in {record['train_seconds']:.0f} s{score}"


# --------------------------------------------------------------------------------------------- table
def metric_keys(metric: str) -> list[str]:
    """The values the registry's metric reports, in its order (e.g. mode_coverage/modes, .../high_quality, ...)."""
    from gan.metrics import METRICS

    return list(METRICS[metric].directions)


@dataclass
class Row:
    variant: str
    steps: int
    precision: str = "32-true"
    threads: int = 1
    runs: list[dict] = field(default_factory=list)

    @property
    def label(self) -> str:
        notes = [self.precision] if self.precision != "32-true" else []
        notes += [f"{self.threads} threads"] if self.threads > 1 else []
        return f"{self.variant} ({', '.join(notes)})" if notes else self.variant

    @property
    def finished(self) -> list[dict]:
        return [r for r in self.runs if not r["diverged"]]

    @property
    def diverged(self) -> int:
        return len(self.runs) - len(self.finished)

    def summary(self, key: str) -> dict[str, Any]:
        """n, mean, std (n - 1), t interval of ``key`` over the seeds that did not diverge (gan.metrics.summary)."""
        from gan.metrics.summary import summarize

        return summarize([r["values"][key] for r in self.finished])


def standard_error(summary: dict[str, Any]) -> float | None:
    return None if summary["std"] is None else summary["std"] / math.sqrt(summary["n"])


def rows_of(records: Iterable[dict], data: str) -> list[Row]:
    """One row per (variant, generator steps, precision, threads) of ``data``, variants in plan order; one run per
    seed (the newest record of a cell run again)."""
    from gan.metrics.summary import newest_records

    rows: dict[tuple[str, int, str, int], Row] = {}
    for record in newest_records(records, record_key):  # --rerun: a seed counts once, with its newest record
        if record["data"] == data:
            key = (record["variant"], record["steps"], record_precision(record), record_threads(record))
            rows.setdefault(key, Row(*key)).runs.append(record)
    order = {v: i for i, v in enumerate(PLAN.get(data, ()))}
    return sorted(rows.values(), key=lambda row: (order.get(row.variant, len(order)), row.variant, row.steps, row.precision,
                                                  row.threads))


def mean_se(key: str, mean: float | None, se: float | None) -> str:
    _, scale, decimals = DISPLAY[key]
    if mean is None:
        return "-"
    return f"{mean * scale:.{decimals}f}" + ("" if se is None else f" ± {se * scale:.{decimals}f}")


def measured_cells(row: Row, keys: list[str]) -> list[str]:
    if not row.finished:
        return ["diverged"] * len(keys)
    cells = []
    for key in keys:
        summary = row.summary(key)
        text = mean_se(key.split("/", 1)[1], summary["mean"], standard_error(summary))
        if summary.get("non_finite"):
            text += f" ({summary['non_finite']} NaN)"
        cells.append(text)
    return cells


def median_seconds(values: list[float | None], decimals: int = 0) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.median(values):.{decimals}f}" if values else "-"


@functools.lru_cache(maxsize=None)
def _composed_toy(overrides: tuple[str, ...]) -> tuple[int, float] | None:
    try:
        from gan.utils.instantiate import build

        datamodule = build(compose_run(overrides).data)  # the 2D toys build their means at once (setup draws points)
        return int(datamodule.modes.shape[0]), float(datamodule.std)
    except Exception as error:  # e.g. an override of an old record the configs no longer take
        print(f"warning: cannot compose the data of {' '.join(overrides)} ({type(error).__name__}: {error}); its rows are "
              "labelled with the data set's default", file=sys.stderr)
        return None


def composed_data(record: dict) -> tuple[int, float | None]:
    """(modes, std) of the data the record's run trained on, from its composed config (its overrides change the
    toys' ``data.grid_values`` / ``data.std``, directly or through an experiment); the data set's defaults for
    Stacked MNIST (always 1,000 modes) and where the overrides do not compose."""
    spec = DATASETS[record["data"]]
    if spec.metric != "mode_coverage":
        return spec.modes, spec.std
    overrides = record.get("overrides") or cell_overrides(Cell(record["variant"], record["data"], record["seed"]),
                                                          record["steps"], record["extra"])
    return _composed_toy(tuple(o for o in overrides if not o.startswith("seed="))) or (spec.modes, spec.std)


def is_default_data(spec: DataSet, modes: int, std: float | None) -> bool:
    return modes == spec.modes and (std is None or spec.std is None or math.isclose(std, spec.std, rel_tol=1e-6))


def table(records: list[dict], datasets: Sequence[str] | None = None) -> str:
    """Markdown: a section per data set, our rows (mean ± standard error over seeds) then the published ones; runs
    whose overrides changed the data (e.g. a scaled 100-mode grid under ``--data grid``) get a section of their own,
    titled with the composed data's mode count and std, without the published rows."""
    sections = []
    for data in datasets or DATASETS:
        spec = DATASETS[data]
        by_data: dict[tuple[int, float | None], list[dict]] = {}
        for record in records:
            if record["data"] == data:
                by_data.setdefault(composed_data(record), []).append(record)
        default = next((key for key in by_data if is_default_data(spec, *key)), (spec.modes, spec.std))
        for modes, std in [default, *(key for key in by_data if key != default)]:
            rows = rows_of(by_data.get((modes, std), []), data)
            published = [p for p in PUBLISHED if p.data == data] if (modes, std) == default else []
            if not rows and not published:
                continue
            title = spec.title if (modes, std) == default else \
                (f"{modes:,} Gaussians, std {std:g}, as the runs' overrides compose it (not the {spec.modes:,}-mode "
                 f"data of `{' '.join(spec.overrides)}`)")
            sections.append(section(data, title, modes, spec.metric, rows, published))
    return "\n\n".join(sections) + "\n"


def section(data: str, title: str, modes: int, metric: str, rows: list[Row], published: list[Published]) -> str:
    """One data set's markdown: the header (``modes`` in the modes column), our rows, the published rows."""
    keys = metric_keys(metric)
    names = [key.split("/", 1)[1] for key in keys]
    header = ["", "variant", "seeds", "diverged", *(f"{DISPLAY[n][0]}" + (f" (of {modes:,})" if n == "modes" else "")
                                                 for n in names), "generator steps", "train s / run", "score s / run"]
    lines = [f"### {data}: {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        status = "ours" if not row.diverged else f"ours, FAILED: {row.diverged} of {len(row.runs)} diverged"
        lines.append("| " + " | ".join([status, row.label, str(len(row.runs)), str(row.diverged), *measured_cells(row, keys),
                                         f"{row.steps:,}", median_seconds([r["train_seconds"] for r in row.runs]),
                                         median_seconds([r["score_seconds"] for r in row.runs], 1)]) + " |")
    for p in published:
        values = [p.values[n].replace("±", " ± ") if n in p.values else "-" for n in names]
        lines.append("| " + " | ".join([f"[published]({p.source})", p.method, p.trials or "-", "-", *values,
                                         p.budget or "not stated", "-", "-"]) + " |")
    mixed = [(row, versions) for row in rows if len(versions := code_versions(row.runs)) > 1]
    if mixed:
        lines.append("")
        lines.extend(f"Code of {row.label} ({row.steps:,} steps): " + "; ".join(
            f"{code} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, sorted(seeds)))})" for code, seeds in versions.items())
            for row, versions in mixed)
    return "\n".join(lines)


def code_versions(runs: Iterable[dict]) -> dict[str, list[int]]:
    """The seeds of a row by the code that ran them (``gan.utils.provenance.group_by_code``; records before
    2026-12-07 hold none): a row whose seeds ran on different code says so under its table."""
    from gan.utils.provenance import group_by_code

    return group_by_code((record["seed"], record.get("provenance")) for record in runs)


# ----------------------------------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=None, help="model= names (default: the plan's)")
    parser.add_argument("--data", nargs="+", default=None, choices=list(DATASETS), help="data sets (default: all four)")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="seeds for every variant (default: r3gan 0-4, others 0-2)")
    parser.add_argument("--steps", type=int, default=None, help="generator steps per run (default: the composed config's, i.e. the preset's)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON lines file the runs are appended to and the table read from")
    parser.add_argument("--rerun", action="store_true", help="run again the cells the file already holds")
    parser.add_argument("--table", action="store_true", help="only print the table of the results file")
    parser.add_argument("extra", nargs="*", help="further Hydra overrides for every run (after --)")
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants or () if not (PROJECT_ROOT / "conf" / "model" / f"{v}.yaml").is_file()]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}: no conf/model/<name>.yaml")
    return args


def main(argv: Sequence[str] | None = None) -> str:
    args = parse_args(argv)
    cells = plan_cells(args.variants, args.data, args.seeds)
    if not cells:
        raise SystemExit(f"no cells: the plan runs {', '.join(args.variants or ())} on no data set; name one with --data")
    if not args.table:
        run(cells, args.steps, args.extra, args.out, args.rerun)
    wanted = {(c.variant, c.data) for c in cells}
    records = [r for r in read_records(args.out) if (r["variant"], r["data"]) in wanted and r["extra"] == list(args.extra)
               and (args.steps is None or r["steps"] == args.steps)]
    if not records:
        print(f"no results in {args.out} for these cells{' and extra overrides ' + ' '.join(args.extra) if args.extra else ''}")
    text = table(records, args.data)
    print("\n" + text)
    return text


if __name__ == "__main__":
    main()
