"""Collect an ablation multirun (``python train.py -m experiment=ablate_tricks``) into one table and a chart.

    python benchmarks/ablation.py logs/ablate_tricks/multiruns/<date_time> [more sweep dirs] [--out DIR]

For every job it reads the trick (``+experiment/ablation=<trick>`` in ``.hydra/overrides.yaml``), the data,
the seed and ``generator_steps`` (``.hydra/config.yaml``), and the LAST record of ``metrics/metrics.jsonl``
written by the metrics callback (the registry in gan/metrics decides each metric's headline value and whether
higher is better). It writes ``ablation.csv`` (every value of every job), ``ablation.md`` (per trick and data
the mean ± sample standard deviation over seeds, ddof 1, "-" for one seed, the change of the mean against the
baseline's, and n, the number of seeds) and ``ablation.png`` (one bar chart per data set, the mean with the
std as error bar) into the (first) sweep directory or ``--out``. Several sweep directories are merged (e.g. a
re-run of the jobs that failed, or more seeds); a later one wins for the same (data, trick, seed).

A job that ended before its ``generator_steps`` (its last score is at an earlier generator step, its
``health.jsonl`` holds a health check's stop event, or its ``result.json`` says ``stopped`` / ``diverged``) is
flagged ("stopped at step N") and left out of the means and of the comparison with the baseline.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.metrics import METRICS  # noqa: E402
from gan.metrics.summary import compare  # noqa: E402

TRICK_KEY = "+experiment/ablation"


def stop_event(job: Path) -> dict | None:
    """The first event of the job's ``health.jsonl`` whose action stopped training (not ``warn``), if any."""
    path = job / "health.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    events = [json.loads(line) for line in lines if line.strip()]
    return next((event for event in events if event.get("action", "warn") != "warn"), None)


def read_job(job: Path) -> dict | None:
    """One job's trick, data, seed, final metric values, protocol and wall time, and where it stopped when it
    ended before its ``generator_steps`` (``stopped_at``, else None); None for a job that did not score."""
    records = job / "metrics" / "metrics.jsonl"
    lines = records.read_text().splitlines() if records.exists() else []
    if not lines:
        return None
    overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or []
    choices = dict(o.split("=", 1) for o in overrides if "=" in o)
    config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
    last = json.loads(lines[-1])
    started = (job / ".hydra" / "config.yaml").stat().st_mtime
    planned = _int_or_none(config.get("generator_steps", choices.get("generator_steps")))
    result_path = job / "result.json"
    status = json.loads(result_path.read_text()).get("status") if result_path.exists() else None
    event = stop_event(job)
    stopped_at, reason = None, None
    if event is not None:
        stopped_at, reason = int(event.get("generator_step", last["generator_step"])), f"health: {event.get('kind')}"
    elif status in ("stopped", "diverged") or (planned is not None and last["generator_step"] < planned):
        stopped_at, reason = int(last["generator_step"]), status
    return {
        "job": f"{job.parent.name}/{job.name}",
        "trick": choices.get(TRICK_KEY, "baseline"),
        "data": choices.get("data", config.get("data", {}).get("_target_", "?")),
        "seed": str(config.get("seed", choices.get("seed", ""))),
        "generator_step": last["generator_step"],
        "generator_steps": planned,
        "stopped_at": stopped_at,
        "stop_reason": reason,
        "values": last["values"],
        "metrics": list(last["protocol"]["metrics"]),
        "minutes": (records.stat().st_mtime - started) / 60,
    }


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):  # absent, or an interpolation the job's config.yaml leaves unresolved
        return None


def scored_values(job: dict) -> dict[str, bool]:
    """The values the registry ranks for the job's first metric -> whether higher is better, headline first."""
    return dict(METRICS[job["metrics"][0]].directions)


def headline(job: dict) -> tuple[str, float, bool]:
    """(name, value, higher_is_better) of the job's first metric's headline, as the registry defines it."""
    name, higher = next(iter(scored_values(job).items()))
    return name, float(job["values"][name]), higher


def collect(sweeps: list[Path]) -> list[dict]:
    """Every job that scored, one per (data, trick, seed): a later sweep directory wins for the same one."""
    found: dict[tuple[str, str, str], dict] = {}
    for sweep in sweeps:
        dirs = sorted((d for d in sweep.iterdir() if (d / ".hydra").is_dir()), key=lambda p: (len(p.name), p.name))
        jobs = [read_job(d) for d in dirs]
        if any(job is None for job in jobs):
            print(f"warning: {sum(job is None for job in jobs)} job(s) in {sweep} wrote no metrics (failed or unfinished); "
                  "left out", file=sys.stderr)
        found.update({(job["data"], job["trick"], job["seed"]): job for job in jobs if job is not None})
    if not found:
        raise SystemExit(f"no job under {', '.join(map(str, sweeps))} wrote metrics/metrics.jsonl: "
                         "is it an `experiment=ablate_tricks` sweep directory?")
    return list(found.values())


def write_csv(jobs: list[dict], path: Path) -> None:
    names = sorted({name for job in jobs for name in job["values"]})
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["data", "trick", "seed", "job", "generator_step", "stopped_at", "minutes", *names])
        for job in jobs:
            writer.writerow([job["data"], job["trick"], job["seed"], job["job"], job["generator_step"],
                             "" if job["stopped_at"] is None else job["stopped_at"], f"{job['minutes']:.2f}",
                             *(job["values"].get(name, "") for name in names)])


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof 1; None for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def against_baseline(values: list[float], baseline: list[float], higher_is_better: bool) -> str:
    """The change of the mean against the baseline's, and with two seeds or more on both sides Welch's p-value and,
    when the 95 % interval of the change leaves out 0, whether the trick is better or worse (gan.metrics.summary,
    as evaluate.py's compare_with): a change within the spread between seeds reads as such, not as an effect."""
    comparison = compare(values, baseline, higher_is_better)
    text = f"{comparison['difference']:+.3g}"
    if comparison["p_value"] is not None:
        verdict = comparison["verdict"]
        text += f", p={comparison['p_value']:.2g}" + (f", {verdict}" if verdict in ("better", "worse") else "")
    return text


def stopped_steps(jobs: list[dict]) -> str:
    return ", ".join(map(str, sorted({job["stopped_at"] for job in jobs})))


def describe_stop(job: dict) -> str:
    planned = "?" if job["generator_steps"] is None else job["generator_steps"]
    reason = f" ({job['stop_reason']})" if job["stop_reason"] else ""
    return f"{job['job']} ({job['data']}, {job['trick']}, seed {job['seed']}) stopped at step {job['stopped_at']} of {planned}{reason}"


def markdown(jobs: list[dict]) -> str:
    """One row per trick; per data set every value the registry ranks as mean ± sample std over the seeds that
    trained to the end, its change against the baseline's mean, and n (seeds); stopped jobs flagged, not compared."""
    datasets = list(dict.fromkeys(job["data"] for job in jobs))
    tricks = list(dict.fromkeys(job["trick"] for job in jobs))
    by_key: dict[tuple[str, str], list[dict]] = {}
    for job in jobs:
        by_key.setdefault((job["data"], job["trick"]), []).append(job)
    columns = {data: list(scored_values(next(job for job in jobs if job["data"] == data)).items()) for data in datasets}
    header = ["trick"]
    for data in datasets:
        header += [f"{data} {name} ({'↑' if higher else '↓'})" for name, higher in columns[data]] + [f"{data} n"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for trick in tricks:
        row = [trick]
        for data in datasets:
            cell = by_key.get((data, trick), [])
            full = [job for job in cell if job["stopped_at"] is None]
            stopped = [job for job in cell if job["stopped_at"] is not None]
            base = [job for job in by_key.get((data, "baseline"), []) if job["stopped_at"] is None]
            for name, higher in columns[data]:
                if not cell:
                    row.append("-")
                    continue
                mean, std = mean_std([float(job["values"][name]) for job in full or stopped])
                text = f"{mean:.4g} ± {'-' if std is None else f'{std:.2g}'}"
                if not full:  # only runs that ended early: not compared with the baseline
                    text += f" (stopped at step {stopped_steps(stopped)})"
                elif base and trick != "baseline":
                    text += f" ({against_baseline([float(job['values'][name]) for job in full], [float(job['values'][name]) for job in base], higher)})"
                row.append(text)
            n = str(len(full)) if cell else "-"
            if stopped:
                n += f" ({len(stopped)} stopped at step {stopped_steps(stopped)}, left out)" if full else \
                    f" ({len(stopped)} stopped at step {stopped_steps(stopped)})"
            row.append(n)
        lines.append("| " + " | ".join(row) + " |")
    steps = sorted({job["generator_step"] for job in jobs})
    minutes = sum(job["minutes"] for job in jobs)
    lines.append("")
    lines.append(f"Values at generator step {', '.join(map(str, steps))}: mean ± sample standard deviation over the seeds "
                 "(ddof 1, - for one seed; n seeds); in brackets the change of the mean against the baseline's, with two "
                 "seeds or more on both sides Welch's p-value, and better / worse when the change's 95 % interval leaves "
                 "out 0; "
                 f"{len(jobs)} jobs, {minutes:.1f} minutes of training in all.")
    stopped = [job for job in jobs if job["stopped_at"] is not None]
    if stopped:
        lines.append("")
        lines.append("Stopped before their generator_steps (left out of the means beside full-length seeds, never compared "
                     "with the baseline): " + "; ".join(map(describe_stop, stopped)) + ".")
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
        tricks = list(dict.fromkeys(job["trick"] for job in rows))
        means, errors, hatches = [], [], []
        for trick in tricks:
            cell = [job for job in rows if job["trick"] == trick]
            full = [job for job in cell if job["stopped_at"] is None]
            mean, std = mean_std([headline(job)[1] for job in full or cell])
            means.append(mean)
            errors.append(std or 0.0)
            hatches.append("" if full else "//")  # only stopped runs
        colors = ["gray" if trick == "baseline" else "tab:blue" for trick in tricks]
        bars = ax.bar(tricks, means, yerr=errors, capsize=3, color=colors)
        for bar, hatch in zip(bars, hatches):
            bar.set_hatch(hatch)
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
