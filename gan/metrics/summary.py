"""Mean, standard deviation and Student-t confidence interval of metric values over several evaluations
(training seeds, checkpoints, or sampling seeds), and the table evaluate.py prints."""
from __future__ import annotations

import math
from typing import Any, Callable, Hashable, Iterable, Mapping, Sequence

CONFIDENCE = 0.95


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """n, mean, sample standard deviation (n - 1) and the two-sided Student-t interval for the mean,
    mean -+ t_{(1 + confidence) / 2, n - 1} * std / sqrt(n). With one value the spread is unknown (None)."""
    from scipy import stats

    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(finite)
    summary: dict[str, Any] = {"n": n, "mean": math.fsum(finite) / n if n else None, "std": None,
                               "confidence": confidence, "interval": None}
    missing = sum(v is None for v in values)  # a run that did not log the metric
    if n + missing < len(values):
        summary["non_finite"] = len(values) - n - missing  # NaN values (e.g. reverse KL without a high-quality sample)
    if missing:
        summary["missing"] = missing
    if n >= 2:
        mean = summary["mean"]
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in finite) / (n - 1))
        half_width = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
        summary.update(std=std, interval=[mean - half_width, mean + half_width])
    return summary


def newest_records(records: Iterable[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], Hashable]) -> list[Mapping[str, Any]]:
    """The newest record of each ``key`` (a run: variant, data, seed, ...), in file order: a benchmark's ``--rerun``
    appends a run again, and a seed must count once in a mean and a standard deviation. Newest: the later
    ``finished`` time, for equal or missing times the later record (records are appended as runs finish)."""
    newest: dict[Hashable, tuple[tuple[str, int], Mapping[str, Any]]] = {}
    for index, record in enumerate(records):
        name, stamp = key(record), (record.get("finished") or "", index)
        if name not in newest or stamp >= newest[name][0]:
            newest[name] = (stamp, record)
    return [record for _, record in sorted(newest.values(), key=lambda item: item[0][1])]


def summarize_runs(runs: Sequence[Mapping[str, float]], confidence: float = CONFIDENCE) -> dict[str, dict[str, Any]]:
    """Per metric (in first-seen order) the summary of its values over ``runs`` (one dict of values each)."""
    names = list(dict.fromkeys(name for run in runs for name in run))
    return {name: summarize([run.get(name) for run in runs], confidence) for name in names}


def format_table(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """A fixed-width table: metric, n, mean, std, confidence interval."""
    def number(value) -> str:
        return "-" if value is None else f"{value:.5g}"

    confidence = next(iter(summary.values()), {}).get("confidence", CONFIDENCE)
    header = ("metric", "n", "mean", "std", f"{100 * confidence:g}% interval (t)")
    rows = [(name, str(s["n"]), number(s["mean"]), number(s["std"]),
             "-" if s["interval"] is None else f"[{number(s['interval'][0])}, {number(s['interval'][1])}]")
            for name, s in summary.items()]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows])
