"""Collect an ablation multirun (``python train.py -m experiment=ablate_tricks``) into one table and a chart.

    python benchmarks/ablation.py logs/ablate_tricks/multiruns/<date_time> [more sweep dirs] [--out DIR]

For every job it reads the trick (``+experiment/ablation=<trick>`` in ``.hydra/overrides.yaml``), the data,
and the LAST record of ``metrics/metrics.jsonl`` written by the metrics callback (the registry in
gan/metrics decides each metric's headline value and whether higher is better). It writes
``ablation.csv`` (every value), ``ablation.md`` (headline per trick and data, with the change against the
baseline) and ``ablation.png`` (one bar chart per data set) into the (first) sweep directory or ``--out``.
Several sweep directories are merged (e.g. a re-run of the jobs that failed); a later one wins for the same
(data, trick).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.metrics import METRICS  # noqa: E402

TRICK_KEY = "+experiment/ablation"


def read_job(job: Path) -> dict | None:
    """One job's trick, data, final metric values, protocol and wall time; None for a job that did not score."""
    records = job / "metrics" / "metrics.jsonl"
    lines = records.read_text().splitlines() if records.exists() else []
    if not lines:
        return None
    overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or []
    choices = dict(o.split("=", 1) for o in overrides if "=" in o)
    config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
    last = json.loads(lines[-1])
    started = (job / ".hydra" / "config.yaml").stat().st_mtime
    return {
        "job": f"{job.parent.name}/{job.name}",
        "trick": choices.get(TRICK_KEY, "baseline"),
        "data": choices.get("data", config.get("data", {}).get("_target_", "?")),
        "generator_step": last["generator_step"],
        "values": last["values"],
        "metrics": list(last["protocol"]["metrics"]),
        "minutes": (records.stat().st_mtime - started) / 60,
    }


def scored_values(job: dict) -> dict[str, bool]:
    """The values the registry ranks for the job's first metric -> whether higher is better, headline first."""
    return dict(METRICS[job["metrics"][0]].directions)


def headline(job: dict) -> tuple[str, float, bool]:
    """(name, value, higher_is_better) of the job's first metric's headline, as the registry defines it."""
    name, higher = next(iter(scored_values(job).items()))
    return name, float(job["values"][name]), higher


def collect(sweeps: list[Path]) -> list[dict]:
    found: dict[tuple[str, str], dict] = {}
    for sweep in sweeps:
        dirs = sorted((d for d in sweep.iterdir() if (d / ".hydra").is_dir()), key=lambda p: (len(p.name), p.name))
        jobs = [read_job(d) for d in dirs]
        if any(job is None for job in jobs):
            print(f"warning: {sum(job is None for job in jobs)} job(s) in {sweep} wrote no metrics (failed or unfinished); "
                  "left out", file=sys.stderr)
        found.update({(job["data"], job["trick"]): job for job in jobs if job is not None})
    if not found:
        raise SystemExit(f"no job under {', '.join(map(str, sweeps))} wrote metrics/metrics.jsonl: "
                         "is it an `experiment=ablate_tricks` sweep directory?")
    return list(found.values())


def write_csv(jobs: list[dict], path: Path) -> None:
    names = sorted({name for job in jobs for name in job["values"]})
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["data", "trick", "job", "generator_step", "minutes", *names])
        for job in jobs:
            writer.writerow([job["data"], job["trick"], job["job"], job["generator_step"], f"{job['minutes']:.2f}",
                             *(job["values"].get(name, "") for name in names)])


def markdown(jobs: list[dict]) -> str:
    """One row per trick; per data set every value the registry ranks, and its change against the baseline."""
    datasets = list(dict.fromkeys(job["data"] for job in jobs))
    tricks = list(dict.fromkeys(job["trick"] for job in jobs))
    by_key = {(job["data"], job["trick"]): job for job in jobs}
    columns = [(data, name, higher) for data in datasets
               for name, higher in scored_values(next(job for job in jobs if job["data"] == data)).items()]
    header = ["trick"] + [f"{data} {name} ({'↑' if higher else '↓'})" for data, name, higher in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for trick in tricks:
        row = [trick]
        for data, name, _ in columns:
            job, base = by_key.get((data, trick)), by_key.get((data, "baseline"))
            if job is None:
                row.append("-")
                continue
            value = float(job["values"][name])
            delta = f" ({value - float(base['values'][name]):+.3g})" if base is not None and trick != "baseline" else ""
            row.append(f"{value:.4g}{delta}")
        lines.append("| " + " | ".join(row) + " |")
    steps = sorted({job["generator_step"] for job in jobs})
    minutes = sum(job["minutes"] for job in jobs)
    lines.append("")
    lines.append(f"Values at generator step {', '.join(map(str, steps))} (in brackets: the change against the baseline); "
                 f"{len(jobs)} jobs, {minutes:.1f} minutes of training in all.")
    return "\n".join(lines) + "\n"


def bar_chart(jobs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(job["data"] for job in jobs))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), dpi=100, squeeze=False)
    for ax, data in zip(axes[0], datasets):
        rows = [job for job in jobs if job["data"] == data]
        name, _, higher = headline(rows[0])
        values = [headline(job)[1] for job in rows]
        colors = ["gray" if job["trick"] == "baseline" else "tab:blue" for job in rows]
        ax.bar([job["trick"] for job in rows], values, color=colors)
        ax.set_title(f"{data}: {name} ({'higher' if higher else 'lower'} is better)")
        ax.tick_params(axis="x", rotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dirs", type=Path, nargs="+", help="multirun directories (logs/ablate_tricks/multiruns/<date_time>)")
    parser.add_argument("--out", type=Path, default=None, help="where to write the table and chart (default: the first sweep dir)")
    args = parser.parse_args(argv)
    for sweep in args.sweep_dirs:
        if not sweep.is_dir():
            parser.error(f"sweep directory not found: {sweep}")
    jobs = collect(args.sweep_dirs)
    out = args.out or args.sweep_dirs[0]
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "ablation.csv", "md": out / "ablation.md", "png": out / "ablation.png"}
    write_csv(jobs, paths["csv"])
    table = markdown(jobs)
    paths["md"].write_text(table)
    bar_chart(jobs, paths["png"])
    print(table)
    print("\n".join(f"wrote {path}" for path in paths.values()))
    return paths


if __name__ == "__main__":
    main()
