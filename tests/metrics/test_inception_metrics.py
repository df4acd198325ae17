"""FID / IS / KID / PRC on Inception features: equal to torch-fidelity on the same image folders and weights,
and to independent numpy/scipy computations from the same features. Offline: a random-init Inception."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.spatial.distance import cdist

from gan.metrics import MetricSuite, MetricsUnavailableError, image_folder_batches
from gan.metrics import features as features_module
from tests.metrics.conftest import Recording, TensorData, random_images, write_folder

N = 10  # Inception resizes every image to 299x299 (~0.25 s each on a CPU): keep the counts tiny


def frechet_distance_lowrank(a: np.ndarray, b: np.ndarray) -> float:
    """FID without forming 2048x2048 products: tr sqrt(S_a S_b) = ||A_c B_c^T||_* / sqrt((n_a-1)(n_b-1))."""
    a_c, b_c = a - a.mean(0), b - b.mean(0)
    cross = scipy.linalg.svdvals(a_c @ b_c.T).sum() / np.sqrt((len(a) - 1) * (len(b) - 1))
    trace_a = (a_c ** 2).sum() / (len(a) - 1)
    trace_b = (b_c ** 2).sum() / (len(b) - 1)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + trace_a + trace_b - 2 * cross)


def inception_score(logits: np.ndarray, splits: int, seed: int) -> float:
    logits = logits[np.random.RandomState(seed).permutation(len(logits))].astype(np.float64)
    p = scipy.special.softmax(logits, axis=1)
    scores = []
    for part in np.array_split(np.arange(len(p)), splits):
        chunk = p[part]
        kl = (chunk * (np.log(chunk) - np.log(chunk.mean(0, keepdims=True)))).sum(1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores))


def unbiased_mmd2_cubic(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x.astype(np.float64), y.astype(np.float64)
    k = lambda u, v: (u @ v.T / u.shape[1] + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean())


def precision_recall(fake: np.ndarray, real: np.ndarray, k: int) -> tuple[float, float]:
    def radii(x):
        return np.sort(cdist(x, x), axis=1)[:, k]  # column 0 is the point itself

    precision = (cdist(fake, real) <= radii(real)[None, :]).any(1).mean()
    recall = (cdist(real, fake) <= radii(fake)[None, :]).any(1).mean()
    return float(precision), float(recall)


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


@pytest.mark.slow
def test_inception_metrics_match_torch_fidelity_and_independent_formulas(tmp_path, inception_weights):
    import torch_fidelity

    fake_images, real_images = random_images(N, seed=1), random_images(N, seed=2, smooth=True)
    fake_dir, real_dir = write_folder(fake_images, tmp_path / "fake"), write_folder(real_images, tmp_path / "real")
    compute = {"fid": {}, "is": {"splits": 2}, "kid": {"subsets": 3, "subset_size": N}, "prc": {"neighborhood": 3}}
    suite = MetricSuite(compute, num_samples=N, num_real=N, batch_size=N, inception_weights=str(inception_weights))
    suite.extractors["inception"] = recording = Recording(suite.extractors["inception"])
    batches, count = image_folder_batches(fake_dir, 3, N)
    values, protocol = suite.evaluate(batches, TensorData(real_images))
    assert count == N and len(recording.outputs) == 2  # one pass over the fakes, one over the reals
    fake, real = recording.outputs  # real_samples permutes the reals: every metric here is order-free on the real side

    ours_vs_fidelity = torch_fidelity.calculate_metrics(
        input1=str(fake_dir), input2=str(real_dir), cuda=False, fid=True, isc=True, kid=True, prc=True,
        feature_extractor="inception-v3-compat", feature_extractor_weights_path=str(inception_weights),
        isc_splits=2, kid_subsets=3, kid_subset_size=N, cache=False, verbose=False)
    assert rel(values["fid"], ours_vs_fidelity["frechet_inception_distance"]) < 1e-3
    assert rel(values["is"], ours_vs_fidelity["inception_score_mean"]) < 1e-3
    assert rel(values["kid"], ours_vs_fidelity["kernel_inception_distance_mean"]) < 1e-3
    assert values["prc/precision"] == ours_vs_fidelity["precision"]
    assert values["prc/recall"] == ours_vs_fidelity["recall"]

    f2048, r2048 = fake["2048"].double().numpy(), real["2048"].double().numpy()
    assert f2048.std() > 1e-3  # the random net gives informative features, not zeros
    assert values["fid"] > 0 and rel(values["fid"], frechet_distance_lowrank(f2048, r2048)) < 1e-3
    assert rel(values["is"], inception_score(fake["logits_unbiased"].numpy(), 2, 2020)) < 1e-3
    assert rel(values["kid"], unbiased_mmd2_cubic(f2048, r2048)) < 1e-3  # subsets of all N: every subset is the full set
    assert (values["prc/precision"], values["prc/recall"]) == pytest.approx(precision_recall(f2048, r2048, 3))

    assert protocol["extractors"]["inception"]["resize"] == features_module.INCEPTION_RESIZE
    assert protocol["metrics"]["fid"]["num_fake"] == N and protocol["reference"] == {"split": "all", "num_real": N, "seed": 0}


@pytest.mark.slow
def test_non_finite_samples_get_nan_inception_features_and_scores(inception_weights):
    """8-bit rounding turned NaN into 0 and inf into 255: a diverged generator's samples scored as black and white
    images, with a finite FID, IS and KID (an audit), where the digit classifier's path gives NaN."""
    fakes = random_images(4, seed=1)
    fakes[1, 0, 3, 3], fakes[3] = float("nan"), float("inf")
    suite = MetricSuite({"fid": {}, "is": {"splits": 1}, "kid": {"subsets": 2, "subset_size": 4}},
                        num_samples=4, num_real=4, batch_size=4, inception_weights=str(inception_weights))
    features = suite.extractors["inception"](fakes)
    assert all(bool(value[[1, 3]].isnan().all()) and bool(value[[0, 2]].isfinite().all()) for value in features.values())
    values, _ = suite.evaluate([fakes], TensorData(random_images(4, seed=2, smooth=True)))
    assert all(np.isnan(values[name]) for name in ("fid", "is", "kid")), values


def test_missing_inception_weights_fail_fast_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_hub"))
    monkeypatch.setattr(features_module, "can_reach", lambda *a, **k: False)
    with pytest.raises(MetricsUnavailableError, match="metrics.inception_weights=") as error:
        MetricSuite(["fid"])
    assert "\n" not in str(error.value)
    with pytest.raises(MetricsUnavailableError, match=r"metrics.inception_weights=/no/such/file.pth is not a file"):
        MetricSuite(["kid"], inception_weights="/no/such/file.pth")
    MetricSuite(["fid_digits", "mode_coverage"])  # metrics without Inception never ask for it
    # another kind of file, or a copy cut short: read only at the first scoring step before, after training up to it
    notes = tmp_path / "notes.txt"
    notes.write_text("not weights")
    with pytest.raises(MetricsUnavailableError, match=rf"^metrics.inception_weights={notes}: not a PyTorch weights file "
                                                      r"\(it starts with neither a zip archive's nor a pickle's signature; 11 bytes\)"):
        MetricSuite(["kid"], inception_weights=str(notes))
    cut = tmp_path / "cut.pth"
    torch.save({"w": torch.zeros(100)}, cut)
    cut.write_bytes(cut.read_bytes()[:200])
    with pytest.raises(MetricsUnavailableError, match=r": a zip archive without its end \(200 bytes"):
        MetricSuite(["kid"], inception_weights=str(cut))


def test_offline_detection_does_not_wait_on_long_timeouts(monkeypatch):
    waited = []

    def fake_connect(address, timeout):
        waited.append(timeout)
        raise OSError("network unreachable")

    monkeypatch.setattr(features_module.socket, "create_connection", fake_connect)
    assert features_module.can_reach() is False
    assert waited == [features_module.CONNECT_TIMEOUT_S] and waited[0] <= 5


def test_uint8_quantisation_matches_png_files(tmp_path):
    images = torch.rand(4, 3, 8, 8) * 2 - 1  # arbitrary floats, as a generator gives
    batches, _ = image_folder_batches(write_folder(images, tmp_path / "png"), 3, 4)
    from_png = next(batches)
    assert torch.equal(features_module.to_uint8(from_png), features_module.to_uint8(images))
