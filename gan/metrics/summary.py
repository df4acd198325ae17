"""Mean, standard deviation and Student-t confidence interval of metric values over several evaluations
(training seeds, checkpoints, or sampling seeds), with the training run as the unit that repeats, and the table
evaluate.py prints."""
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


def unit_values(evaluations: Sequence[tuple[Hashable, Mapping[str, float]]]) -> tuple[str, dict[str, list[float | None]]]:
    """(unit, per metric its values, one per unit) of (checkpoint, values) evaluations, with the training run as the
    unit that repeats.

    With several checkpoints, each contributes one value, the mean of its latent seeds' finite values (NaN when it has
    none, None when none of its evaluations has the metric): latent seeds of one checkpoint share its weights, so
    counted as values of their own they narrowed an interval by about the square root of the seed count (and the t
    quantile of more degrees of freedom) without a single new training run. With one checkpoint its latent seeds are
    the unit, and an interval speaks of sampling noise only."""
    groups = checkpoints_of(evaluations)
    names = list(dict.fromkeys(name for _, values in evaluations for name in values))
    if len(groups) == 1:
        return "latent seed", {name: [values.get(name) for _, values in evaluations] for name in names}
    per_unit: dict[str, list[float | None]] = {}
    for name in names:
        per_unit[name] = []
        for runs in groups.values():
            if all(name not in values for values in runs):
                per_unit[name].append(None)
                continue
            finite = [float(values[name]) for values in runs if name in values and math.isfinite(float(values[name]))]
            per_unit[name].append(math.fsum(finite) / len(finite) if finite else math.nan)
    return "checkpoint", per_unit


def checkpoints_of(evaluations: Sequence[tuple[Hashable, Mapping[str, float]]]) -> dict[Hashable, list[Mapping[str, float]]]:
    """Each checkpoint's evaluations (one per latent seed), in first-seen order."""
    groups: dict[Hashable, list[Mapping[str, float]]] = {}
    for checkpoint, values in evaluations:
        groups.setdefault(checkpoint, []).append(values)
    return groups


def summarize_evaluations(evaluations: Sequence[tuple[Hashable, Mapping[str, float]]],
                          confidence: float = CONFIDENCE) -> dict[str, dict[str, Any]]:
    """Per metric, the summary of the :func:`unit_values` of (checkpoint, values) evaluations, with its ``unit``;
    ``latent_std`` (several checkpoints, several latent seeds each): the pooled standard deviation between a
    checkpoint's latent seeds, the sampling noise beside the spread between training runs."""
    unit, per_unit = unit_values(evaluations)
    result = {name: {**summarize(values, confidence), "unit": unit} for name, values in per_unit.items()}
    if unit == "checkpoint":
        groups = checkpoints_of(evaluations).values()
        for name in result:
            within = [summarize([values.get(name) for values in runs])["std"] for runs in groups]
            variances = [std ** 2 for std in within if std is not None]
            if variances:
                result[name]["latent_std"] = math.sqrt(math.fsum(variances) / len(variances))
    return result


def compare(values: Sequence[float | None], baseline: Sequence[float | None], higher_is_better: bool | None,
            confidence: float = CONFIDENCE, paired: bool = False) -> dict[str, Any]:
    """``values`` against ``baseline`` (one value per unit each, non-finite and missing ones left out): the difference
    of the means, its two-sided interval and p-value, and a verdict: ``better`` / ``worse`` (``higher`` / ``lower`` for
    a value without a direction) when the interval leaves out 0, else ``no clear difference``; None when either side
    has fewer than two values, whose spread is unknown.

    Unpaired (``test``: ``Welch``): Student's t with the Welch-Satterthwaite degrees of freedom, which does not assume
    equal spreads. ``paired`` (``test``: ``paired t``): the i-th values of the two sides belong together (two
    checkpoints scored at the same latent seed: the same latent codes), so the t interval is of the mean of the
    differences, over the pairs both of whose values are finite: what a seed's codes do to both sides alike cancels
    instead of widening the interval, as it does in Welch's test."""
    from scipy import stats

    if paired:
        if len(values) != len(baseline):
            raise ValueError(f"a paired comparison needs as many values as baseline values, got {len(values)} and {len(baseline)}")
        pairs = [(float(v), float(w)) for v, w in zip(values, baseline)
                 if v is not None and w is not None and math.isfinite(float(v)) and math.isfinite(float(w))]
        a, b = [v for v, _ in pairs], [w for _, w in pairs]
    else:
        a = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        b = [float(v) for v in baseline if v is not None and math.isfinite(float(v))]
    ours, theirs = summarize(a, confidence), summarize(b, confidence)
    result: dict[str, Any] = {"n": len(a), "mean": ours["mean"], "baseline_n": len(b), "baseline_mean": theirs["mean"],
                              "difference": None, "confidence": confidence, "interval": None, "p_value": None,
                              "verdict": None, "test": "paired t" if paired else "Welch"}
    if a and b:
        result["difference"] = ours["mean"] - theirs["mean"]
    if len(a) < 2 or len(b) < 2:
        return result
    difference = result["difference"]
    if paired:
        differences = summarize([v - w for v, w in pairs], confidence)
        error, freedom = differences["std"] / math.sqrt(len(pairs)), len(pairs) - 1
    else:
        a_part, b_part = ours["std"] ** 2 / len(a), theirs["std"] ** 2 / len(b)
        error = math.sqrt(a_part + b_part)
        freedom = (a_part + b_part) ** 2 / (a_part ** 2 / (len(a) - 1) + b_part ** 2 / (len(b) - 1)) if error else None
    if error == 0:  # no spread on either side (or in the differences): the difference is what it is
        result.update(interval=[difference, difference], p_value=0.0 if difference else 1.0)
    else:
        half_width = float(stats.t.ppf((1 + confidence) / 2, freedom)) * error
        result.update(interval=[difference - half_width, difference + half_width], degrees_of_freedom=freedom,
                      p_value=float(2 * stats.t.sf(abs(difference) / error, freedom)))
    low, high = result["interval"]
    if low > 0 or high < 0:
        higher = low > 0
        if higher_is_better is None:
            result["verdict"] = "higher" if higher else "lower"
        else:
            result["verdict"] = "better" if higher == higher_is_better else "worse"
    else:
        result["verdict"] = "no clear difference"
    return result


def compare_evaluations(evaluations: Sequence[tuple[Hashable, Mapping[str, float]]],
                        baseline: Sequence[tuple[Hashable, Mapping[str, float]]],
                        higher_is_better: Mapping[str, bool], confidence: float = CONFIDENCE) -> dict[str, dict[str, Any]]:
    """Per metric both sides have, :func:`compare` of their :func:`unit_values` (``unit``: what repeats). One checkpoint
    on each side, scored at the same latent seeds in the same order, is a paired comparison (seed by seed); training
    runs are not paired (nothing ties one side's run to one of the other's)."""
    unit, ours = unit_values(evaluations)
    baseline_unit, theirs = unit_values(baseline)
    paired = unit == baseline_unit == "latent seed" and len(evaluations) == len(baseline)
    return {name: {**compare(ours[name], theirs[name], higher_is_better.get(name), confidence, paired=paired), "unit": unit}
            for name in ours if name in theirs}


def format_comparison(comparison: Mapping[str, Mapping[str, Any]]) -> str:
    """A fixed-width table: metric, n and mean of each side, difference, its interval, p-value, verdict."""
    def number(value) -> str:
        return "-" if value is None else f"{value:.5g}"

    first = next(iter(comparison.values()), {})
    confidence, test = first.get("confidence", CONFIDENCE), first.get("test", "Welch")
    header = ("metric", "n", "mean", "baseline n", "baseline mean", "difference",
              f"{100 * confidence:g}% interval ({test})", "p", "verdict")
    rows = [(name, str(c["n"]), number(c["mean"]), str(c["baseline_n"]), number(c["baseline_mean"]),
             number(c["difference"]),
             "-" if c["interval"] is None else f"[{number(c['interval'][0])}, {number(c['interval'][1])}]",
             "-" if c["p_value"] is None else f"{c['p_value']:.3g}", c["verdict"] or "-")
            for name, c in comparison.items()]
    return fixed_width([header, *rows])


def format_table(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """A fixed-width table: metric, n, mean, std, confidence interval, and the spread between latent seeds when the
    summary has one."""
    def number(value) -> str:
        return "-" if value is None else f"{value:.5g}"

    confidence = next(iter(summary.values()), {}).get("confidence", CONFIDENCE)
    header = ("metric", "n", "mean", "std", f"{100 * confidence:g}% interval (t)")
    rows = [(name, str(s["n"]), number(s["mean"]), number(s["std"]),
             "-" if s["interval"] is None else f"[{number(s['interval'][0])}, {number(s['interval'][1])}]")
            for name, s in summary.items()]
    if any("latent_std" in s for s in summary.values()):
        header += ("latent-seed std",)
        rows = [(*row, number(s.get("latent_std"))) for row, s in zip(rows, summary.values())]
    return fixed_width([header, *rows])


def fixed_width(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells as columns padded to their widest cell, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)
