"""The metric formulas on features with known answers: Frechet distances (closed form, torch-fidelity),
FID-infinity on two Gaussians, density/coverage on hand-made point sets, confidence-interval arithmetic."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gan.metrics.functional import (density_coverage, extrapolate_to_infinity, frechet_distance,
                                    frechet_distance_of_features, nested_counts)
from gan.metrics.registry import METRICS
from gan.metrics.summary import (compare, compare_evaluations, format_comparison, format_table, summarize,
                                 summarize_evaluations, summarize_runs, unit_values)


def gaussian(n: int, mean: torch.Tensor, covariance_factor: torch.Tensor, seed: int) -> torch.Tensor:
    noise = torch.randn(n, len(mean), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return mean + noise @ covariance_factor.T


@pytest.mark.parametrize("n", [500, 40])  # 40 < 64 dimensions: singular covariances
def test_frechet_distance_equals_torch_fidelity_sqrtm(n):
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    rng = torch.Generator().manual_seed(0)
    fake, real = torch.randn(n, 64, generator=rng), 0.5 + 2 * torch.randn(n, 64, generator=rng) ** 2
    expected = fid_statistics_to_metric(*map(fid_features_to_statistics, (fake, real)), verbose=False)["frechet_inception_distance"]
    assert frechet_distance_of_features(fake, real) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_frechet_distance_of_non_finite_features_is_nan_not_an_error(bad):
    rng = torch.Generator().manual_seed(0)
    fake, real = torch.randn(100, 8, generator=rng), torch.randn(100, 8, generator=rng)
    assert math.isfinite(frechet_distance_of_features(fake, real))
    fake[3, 5] = bad  # one diverged sample makes the fake statistics non-finite
    assert math.isnan(frechet_distance_of_features(fake, real))
    assert math.isnan(frechet_distance_of_features(real, fake))


def test_fid_infinity_recovers_the_closed_form_distance_that_finite_fid_misses():
    """Fakes N(0, S), reals N(m, S): the true Frechet distance is |m|^2 = 1. FID on N fakes is biased upwards by
    about tr(S)/N-like terms (0.7 here at N = 2,000 in 64 dimensions); FID-infinity removes that bias. Over 12
    seeds of this set-up the finite FID was 0.63..0.80 too high, FID-infinity within 0.17 (sd 0.06)."""
    d = 64
    factor = torch.randn(d, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64) / d ** 0.5
    covariance_factor = torch.linalg.cholesky(factor @ factor.T + 0.5 * torch.eye(d, dtype=torch.float64))
    shift = torch.full((d,), 1 / d ** 0.5, dtype=torch.float64)
    covariance = covariance_factor @ covariance_factor.T
    true = frechet_distance(torch.zeros(d, dtype=torch.float64), covariance, shift, covariance)
    assert true == pytest.approx(1.0)

    fake = gaussian(2000, torch.zeros(d, dtype=torch.float64), covariance_factor, seed=1).float()
    real = gaussian(100_000, shift, covariance_factor, seed=2).float()  # the reference: bias 0.7 * 2000/100000
    metric = METRICS["fid_inf"](extractor="digit_classifier")  # any extractor's features: these stand in for them
    fid_inf = metric.compute({"features": fake}, {"features": real}, None)["fid_inf"]
    fid = METRICS["fid_digits"]().compute({"features": fake}, {"features": real}, None)["fid_digits"]
    tolerance = 0.3
    assert abs(fid - true) > 2 * tolerance  # finite N misses ...
    assert abs(fid_inf - true) < tolerance  # ... the extrapolation recovers it
    assert metric.options(2000)["counts"] == nested_counts(2000, 15, 0.1) == list(np.linspace(200, 2000, 15).astype(int))


def test_extrapolation_is_the_least_squares_intercept_in_one_over_n():
    counts = [100, 200, 400, 800]
    assert extrapolate_to_infinity(counts, [3.0 + 50.0 / n for n in counts]) == pytest.approx((3.0, 50.0))
    noisy = [3.0 + 50.0 / n + e for n, e in zip(counts, [0.1, -0.1, 0.05, -0.05])]
    x = 1 / np.array(counts, dtype=float)
    slope, intercept = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), np.array(noisy), rcond=None)[0]
    assert extrapolate_to_infinity(counts, noisy) == pytest.approx((intercept, slope))
    with pytest.raises(ValueError, match="at least two distinct values"):
        METRICS["fid_inf"](counts=[5]).counts_for(100)


def test_is_infinity_is_the_intercept_of_the_inception_scores_of_random_subsets():
    import scipy.special

    logits = 3 * torch.randn(300, 20, generator=torch.Generator().manual_seed(0))
    counts = [60, 120, 300]
    value = METRICS["is_inf"](counts=counts, seed=5).compute({"logits_unbiased": logits}, None, None)["is_inf"]
    subsets = torch.Generator().manual_seed(5)  # a fresh random subset for each count, as Chong & Forsyth draw them
    scores = []
    for n in counts:
        p = scipy.special.softmax(logits[torch.randperm(300, generator=subsets)[:n]].double().numpy(), axis=1)
        scores.append(np.exp((p * (np.log(p) - np.log(p.mean(0, keepdims=True)))).sum(1).mean()))
    assert value == pytest.approx(np.polyfit(1 / np.array(counts), scores, 1)[1], rel=1e-9)
    same = torch.zeros(300, 20)  # every sample the same prediction: IS 1 at every N, so at infinity
    assert METRICS["is_inf"](counts=counts).compute({"logits_unbiased": same}, None, None)["is_inf"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------- density/coverage
def prdc_reference(fake: np.ndarray, real: np.ndarray, k: int) -> tuple[float, float]:
    """Naeem et al.'s formulas, written plainly (their prdc package, without sklearn)."""
    real_real = np.linalg.norm(real[:, None] - real[None], axis=-1)
    radii = np.sort(real_real, axis=1)[:, k]  # column 0 is the point itself
    real_fake = np.linalg.norm(real[:, None] - fake[None], axis=-1)
    density = (real_fake < radii[:, None]).sum() / (k * len(fake))
    coverage = (real_fake.min(axis=1) < radii).mean()
    return float(density), float(coverage)


def test_density_and_coverage_of_identical_and_disjoint_sets():
    real = torch.randn(300, 8, generator=torch.Generator().manual_seed(0))
    same = density_coverage(real.clone(), real, k=5)
    # each real ball holds its centre and its k - 1 nearer neighbours strictly inside: density 1 (the k-th
    # neighbour lies on the ball's edge, where rounding in the distances may count it either way)
    assert same["coverage"] == 1.0 and same["density"] == pytest.approx(1.0, abs=0.01)
    far = density_coverage(real + 1000, real, k=5)
    assert far == {"density": 0.0, "coverage": 0.0}


def test_density_and_coverage_of_half_covered_clusters():
    """Reals: two far-apart clusters A and B. Fakes: copies of A plus as many points far from both. Every A
    ball holds k fakes (its centre and the k - 1 neighbours inside it; the k-th lies on the edge) and no B
    ball holds one: coverage 1/2, density (|A| k / k) / |fakes| = 1/2."""
    rng = torch.Generator().manual_seed(1)
    cluster_a, cluster_b = torch.randn(100, 4, generator=rng), torch.randn(100, 4, generator=rng) + 100
    fakes = torch.cat([cluster_a, torch.randn(100, 4, generator=rng) - 100])
    out = density_coverage(fakes, torch.cat([cluster_a, cluster_b]), k=5)
    assert out["coverage"] == 0.5 and out["density"] == pytest.approx(0.5, abs=0.01)


def test_density_and_coverage_equal_the_reference_formulas_across_chunks(monkeypatch):
    from gan.metrics import functional

    rng = torch.Generator().manual_seed(2)
    real, fake = torch.randn(120, 6, generator=rng), 0.3 + 1.2 * torch.randn(90, 6, generator=rng)
    expected = prdc_reference(fake.double().numpy(), real.double().numpy(), k=5)
    assert tuple(density_coverage(fake, real, k=5).values()) == pytest.approx(expected, rel=1e-12)
    monkeypatch.setattr(functional, "_chunk_rows", lambda columns, budget=0: 7)  # blocks of 7 rows
    assert tuple(density_coverage(fake, real, k=5).values()) == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------------------ confidence intervals
def test_confidence_interval_arithmetic_on_fixed_inputs():
    # Student's t has closed-form quantiles for 1 and 2 degrees of freedom: tan(pi (p - 1/2)) and
    # (2p - 1) / sqrt(2 p (1 - p)); p = 0.975 for a two-sided 95 % interval
    two = summarize([1.0, 3.0])
    assert (two["n"], two["mean"], two["std"]) == (2, 2.0, pytest.approx(math.sqrt(2)))
    half = math.tan(math.pi * 0.475) * math.sqrt(2) / math.sqrt(2)
    assert two["interval"] == pytest.approx([2.0 - half, 2.0 + half])
    three = summarize([2.0, 4.0, 9.0])
    std = math.sqrt(((2 - 5) ** 2 + (4 - 5) ** 2 + (9 - 5) ** 2) / 2)
    half = 0.95 / math.sqrt(2 * 0.975 * 0.025) * std / math.sqrt(3)
    assert (three["mean"], three["std"]) == (5.0, pytest.approx(std))
    assert three["interval"] == pytest.approx([5.0 - half, 5.0 + half])
    many = summarize(list(np.linspace(0, 1, 2001)))  # large n: the t quantile tends to the normal 1.95996
    assert many["interval"][1] - many["mean"] == pytest.approx(1.959964 * many["std"] / math.sqrt(2001), rel=1e-3)

    single = summarize([7.0])
    assert single["mean"] == 7.0 and single["std"] is None and single["interval"] is None
    with_nan = summarize([1.0, float("nan"), 3.0])
    assert with_nan["n"] == 2 and with_nan["non_finite"] == 1 and with_nan["mean"] == 2.0 and "missing" not in with_nan
    gaps = summarize_runs([{"fid": 1.0, "kid": 0.5}, {"fid": float("inf")}, {"fid": 3.0, "kid": 0.7}])
    assert gaps["kid"]["missing"] == 1 and "non_finite" not in gaps["kid"]  # a run without the metric is not a NaN
    assert gaps["fid"]["non_finite"] == 1 and "missing" not in gaps["fid"] and gaps["fid"]["mean"] == 2.0

    table = format_table(summarize_runs([{"fid": 1.0, "kid": 0.5}, {"fid": 3.0, "kid": 0.7}]))
    header, fid_row, kid_row = table.splitlines()
    assert header.split()[:4] == ["metric", "n", "mean", "std"] and "95%" in header
    assert fid_row.split()[:3] == ["fid", "2", "2"] and kid_row.startswith("kid")


def test_evaluations_of_several_checkpoints_are_summarized_over_checkpoints():
    """Latent seeds of one checkpoint share its weights: three checkpoints x two latent seeds are three values (each
    checkpoint's mean), not six; the spread between latent seeds is reported beside it."""
    evaluations = [("a", {"fid": 10.0, "kid": 1.0}), ("a", {"fid": 12.0, "kid": 1.0}),
                   ("b", {"fid": 20.0, "kid": 2.0}), ("b", {"fid": 20.0, "kid": float("nan")}),
                   ("c", {"fid": 31.0}), ("c", {"fid": 29.0})]
    summary = summarize_evaluations(evaluations)
    assert summary["fid"] == {**summarize([11.0, 20.0, 30.0]), "unit": "checkpoint",
                              "latent_std": pytest.approx(math.sqrt((2.0 + 0.0 + 2.0) / 3))}
    wrong = summarize([10.0, 12.0, 20.0, 20.0, 31.0, 29.0])  # what pooling every evaluation gave
    assert summary["fid"]["interval"][1] - summary["fid"]["mean"] > 2 * (wrong["interval"][1] - wrong["mean"])
    # a NaN evaluation leaves its checkpoint the mean of the others; a checkpoint without the metric is missing
    assert summary["kid"]["n"] == 2 and summary["kid"]["mean"] == 1.5 and summary["kid"]["missing"] == 1
    assert summary["kid"]["latent_std"] == 0.0  # only checkpoint a has two finite kid values

    one_checkpoint = summarize_evaluations([("a", {"fid": 10.0}), ("a", {"fid": 12.0}), ("a", {"fid": 14.0})])
    assert one_checkpoint["fid"] == {**summarize([10.0, 12.0, 14.0]), "unit": "latent seed"}
    one_seed_each = summarize_evaluations([("a", {"fid": 10.0}), ("b", {"fid": 14.0})])
    assert one_seed_each["fid"] == {**summarize([10.0, 14.0]), "unit": "checkpoint"}  # no latent spread to report

    table = format_table(summary).splitlines()
    assert table[0].endswith("latent-seed std")
    assert table[1].split()[:3] == ["fid", "3", "20.333"] and table[1].split()[-1] == f"{math.sqrt(4 / 3):.5g}"


def test_a_checkpoint_s_unit_value_tells_a_seed_without_the_metric_from_values_that_are_not_finite():
    """A checkpoint that logged a metric at some seeds only contributes their mean; one whose every value is NaN is
    non-finite, not missing (two mutations of unit_values survived)."""
    evaluations = [("a", {"fid": 1.0}), ("a", {}), ("b", {"fid": 3.0}), ("b", {"fid": 5.0}),
                   ("c", {"fid": float("nan")}), ("c", {"fid": float("nan")}), ("d", {})]
    unit, values = unit_values(evaluations)
    assert unit == "checkpoint" and values["fid"][:2] == [1.0, 4.0] and math.isnan(values["fid"][2]) and values["fid"][3] is None
    summary = summarize_evaluations(evaluations)["fid"]
    assert (summary["n"], summary["mean"], summary["non_finite"], summary["missing"]) == (2, 2.5, 1, 1)


def test_welch_comparison_matches_scipy_and_reads_the_metric_direction():
    from scipy import stats

    ours, baseline = [20.1, 22.4, 19.8, 21.0], [25.3, 27.9, 24.1]
    result = compare(ours, baseline, higher_is_better=False)
    reference = stats.ttest_ind(ours, baseline, equal_var=False)
    interval = reference.confidence_interval(0.95)
    assert result["difference"] == pytest.approx(np.mean(ours) - np.mean(baseline), rel=1e-12)
    assert result["p_value"] == pytest.approx(reference.pvalue, rel=1e-9)
    assert result["interval"] == pytest.approx([interval.low, interval.high], rel=1e-9)
    assert result["degrees_of_freedom"] == pytest.approx(reference.df, rel=1e-9)
    assert (result["n"], result["baseline_n"], result["verdict"]) == (4, 3, "better")  # lower FID: better
    assert compare(ours, baseline, higher_is_better=True)["verdict"] == "worse"
    assert compare(ours, baseline, higher_is_better=None)["verdict"] == "lower"
    assert compare(baseline, ours, higher_is_better=None)["verdict"] == "higher"
    overlapping = compare([20.0, 24.0, 22.0], [21.0, 25.0, 23.5], higher_is_better=False)
    assert overlapping["interval"][0] < 0 < overlapping["interval"][1] and overlapping["verdict"] == "no clear difference"
    # non-finite values are left out; one value on a side: no spread, no interval, no verdict
    assert compare([1.0, float("nan"), 3.0], [5.0, 7.0], False)["n"] == 2
    single = compare([1.0], [5.0, 7.0], False)
    assert single["difference"] == -5.0 and single["interval"] is None and single["verdict"] is None
    constant = compare([0.0, 0.0], [0.0, 0.0], True)  # e.g. density 0 on both sides
    assert constant["interval"] == [0.0, 0.0] and constant["p_value"] == 1.0 and constant["verdict"] == "no clear difference"


def test_paired_comparison_matches_scipy_and_cancels_what_a_seed_does_to_both_sides():
    from scipy import stats

    ours, baseline = [20.1, 22.4, 19.8, 21.0, 23.3], [21.0, 23.9, 20.1, 22.2, 23.9]
    result = compare(ours, baseline, higher_is_better=False, paired=True)
    reference = stats.ttest_rel(ours, baseline)
    interval = reference.confidence_interval(0.95)
    assert result["test"] == "paired t" and compare(ours, baseline, False)["test"] == "Welch"
    assert result["difference"] == pytest.approx(np.mean(ours) - np.mean(baseline), rel=1e-12)
    assert result["p_value"] == pytest.approx(reference.pvalue, rel=1e-9)
    assert result["interval"] == pytest.approx([interval.low, interval.high], rel=1e-9)
    assert result["degrees_of_freedom"] == reference.df == 4
    assert result["verdict"] == "better"  # every seed lower; Welch's test, blind to the pairs, cannot tell
    assert compare(ours, baseline, higher_is_better=False)["verdict"] == "no clear difference"
    # a pair with a non-finite or missing value is left out whole, so both means are over the same seeds
    holes = compare([1.0, float("nan"), 3.0, 4.0], [0.5, 2.0, None, 3.0], None, paired=True)
    assert (holes["n"], holes["baseline_n"], holes["mean"], holes["baseline_mean"]) == (2, 2, 2.5, 1.75)
    baseline_hole = compare([1.0, 2.0, 3.0, 4.0], [0.5, float("nan"), 2.0, 3.0], None, paired=True)  # the other side's
    assert (baseline_hole["n"], baseline_hole["baseline_n"], baseline_hole["mean"]) == (3, 3, pytest.approx(8 / 3))
    assert baseline_hole["baseline_mean"] == pytest.approx(11 / 6) and math.isfinite(baseline_hole["p_value"])
    shifted = compare([5.0, 9.0, 2.0], [4.0, 8.0, 1.0], False, paired=True)  # the same shift at every seed
    assert shifted["interval"] == [1.0, 1.0] and shifted["p_value"] == 0.0 and shifted["verdict"] == "worse"
    with pytest.raises(ValueError, match="as many values as baseline values, got 2 and 3"):
        compare([1.0, 2.0], [1.0, 2.0, 3.0], False, paired=True)


def test_two_checkpoints_over_the_same_latent_seeds_are_compared_seed_by_seed():
    ours = [("a", {"fid": 10.0}), ("a", {"fid": 14.0}), ("a", {"fid": 12.5})]
    theirs = [("b", {"fid": 11.0}), ("b", {"fid": 15.2}), ("b", {"fid": 13.4})]
    comparison = compare_evaluations(ours, theirs, {"fid": False})
    assert comparison["fid"] == {**compare([10.0, 14.0, 12.5], [11.0, 15.2, 13.4], False, paired=True), "unit": "latent seed"}
    assert comparison["fid"]["verdict"] == "better"
    assert "interval (paired t)" in format_comparison(comparison).splitlines()[0]
    # one checkpoint's seeds against two checkpoints (evaluate.py refuses the mix; the Python API may not): unpaired
    runs = [("b", {"fid": 11.0}), ("b", {"fid": 15.2}), ("c", {"fid": 13.4}), ("c", {"fid": 12.0})]
    assert compare_evaluations(ours + [("a", {"fid": 11.0})], runs, {"fid": False})["fid"]["test"] == "Welch"
    # one checkpoint each, scored at different numbers of latent seeds: nothing pairs them, so Welch
    fewer = compare_evaluations(ours, theirs[:2], {"fid": False})["fid"]
    assert fewer == {**compare([10.0, 14.0, 12.5], [11.0, 15.2], False), "unit": "latent seed"} and fewer["test"] == "Welch"


def test_comparing_evaluations_uses_each_sides_checkpoint_means():
    ours = [("a", {"fid": 10.0}), ("a", {"fid": 12.0}), ("b", {"fid": 14.0}), ("b", {"fid": 14.0})]
    theirs = [("c", {"fid": 20.0, "kid": 1.0}), ("c", {"fid": 22.0, "kid": 1.0}), ("d", {"fid": 30.0, "kid": 2.0}),
              ("d", {"fid": 30.0, "kid": 2.0})]
    comparison = compare_evaluations(ours, theirs, {"fid": False})
    assert list(comparison) == ["fid"]  # kid: only the baseline has it
    assert comparison["fid"] == {**compare([11.0, 14.0], [21.0, 30.0], False), "unit": "checkpoint"}
    rows = format_comparison(comparison).splitlines()
    assert rows[0].split()[:3] == ["metric", "n", "mean"] and "interval (Welch)" in rows[0]
    assert rows[1].split()[:6] == ["fid", "2", "12.5", "2", "25.5", "-13"]
