"""The registry on the digit classifier (cheap): FID from the same features, the real-feature cache,
monitors, config presets, clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from gan.data.digits import DigitsDataModule
from gan.metrics import METRICS, MetricSuite, best_monitor, registry
from gan.utils.config import PROJECT_ROOT


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's matrix square root (fine at 64 dimensions)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


class Replay:
    """A 'generator' replaying fixed samples (real digits, or noise)."""

    def __init__(self, samples):
        self.samples, self.offset = samples, 0

    def sample(self, n, generator=None):
        out = self.samples[self.offset:self.offset + n]
        self.offset += n
        return out


@pytest.fixture
def digits(data_dir):
    data = DigitsDataModule(root=str(data_dir))
    data.setup("fit")
    return data


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # dead ReLU units: singular covariances
def test_fid_digits_equals_scipy_frechet_distance_from_the_same_features(digits):
    # the embedded digits are stored class by class: take a random subset, not a slice
    real_half = digits.train_set.tensors[0][torch.randperm(5000, generator=torch.Generator().manual_seed(1))[:600]]
    suite = MetricSuite(["fid_digits"], num_samples=600, num_real=600, batch_size=200)
    values, _ = suite.evaluate_generator(Replay(real_half), digits)
    extractor = suite.extractors["digit_classifier"]
    fake = extractor(real_half)["features"].double().numpy()
    real = extractor(digits.real_samples(600, torch.Generator().manual_seed(0)))["features"].double().numpy()
    assert values["fid_digits"] == pytest.approx(frechet_distance(fake, real), rel=1e-3)
    noise, _ = suite.evaluate_generator(Replay(torch.rand(600, 1, 28, 28) * 2 - 1), digits)
    assert noise["fid_digits"] > 20 * values["fid_digits"]  # real digits sit far closer to the digits than noise


def test_a_generator_of_nan_samples_scores_nan_instead_of_failing(digits):
    # a run without the health check (callbacks=[metrics]) that diverged to NaN used to stop with a LinAlgError
    knn = {"extractor": "digit_classifier"}
    suite = MetricSuite({"fid_digits": {}, "prc": knn, "density_coverage": knn}, num_samples=100, num_real=200, batch_size=50)
    values, _ = suite.evaluate_generator(Replay(torch.full((100, 1, 28, 28), float("nan"))), digits)
    # every value NaN: the k-NN counts gave 0/0 for coverage and 0 for precision and recall (an audit)
    assert set(values) == {"fid_digits", "prc/precision", "prc/recall", "prc/f_score", "density_coverage/density",
                           "density_coverage/coverage"} and all(np.isnan(value) for value in values.values()), values


def test_real_features_are_cached_reused_and_invalidated(digits, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    fake = torch.rand(50, 1, 28, 28) * 2 - 1
    calls = []
    draw = registry.real_sample_indices
    monkeypatch.setattr(registry, "real_sample_indices", lambda data, n, seed: calls.append(n) or draw(data, n, seed))

    def score(**settings):
        suite = MetricSuite(["fid_digits"], num_samples=50, cache_dir=str(cache), **{"num_real": 300, **settings})
        return suite.evaluate_generator(Replay(fake), digits)[0]["fid_digits"]

    first = score()
    assert calls == [300] and len(list(cache.glob("*.pt"))) == 1
    assert score() == first and calls == [300]  # a second run (a new suite) reads the cache
    score(num_real=200)  # another reference count: recomputed, kept beside the first
    assert calls == [300, 200] and len(list(cache.glob("*.pt"))) == 2
    score(seed=1)  # other real samples
    assert calls == [300, 200, 300]
    assert not list(cache.glob("*.tmp"))  # written atomically: no temporary left behind

    from gan.metrics import features

    monkeypatch.setattr(features.DigitFeatures, "_weights_sha256", "another-classifier")
    score()  # a different extractor (protocol change): recomputed
    assert calls[-1] == 300 and len(calls) == 4
    for path in cache.glob("*.pt"):
        path.write_bytes(b"truncated")
    assert score(seed=1) != first and len(calls) == 5  # unreadable file: recomputed, never trusted


def test_the_cache_key_holds_a_hash_of_the_code_that_makes_the_features(digits, tmp_path, monkeypatch):
    import hashlib
    import importlib
    import sys
    from importlib import metadata

    from gan.metrics.cache import EXTRACTION_LIBRARIES, code_sha256, feature_code, source_files

    files = source_files(type(digits))
    named = [(path.parent.name, path.name) for path in files]
    assert named[:3] == [("metrics", "features.py"), ("metrics", "digit_classifier.py"), ("metrics", "dinov2.py")]
    assert {("data", "digits.py"), ("data", "transforms.py"), ("data", "base.py")} <= set(named)  # the whole package
    assert not any("lightning" in str(path) for path in files)  # Lightning's base class is not hashed
    digest = hashlib.sha256(b"".join(path.name.encode() + b"\0" + path.read_bytes() + b"\0" for path in files))
    code = feature_code(digits)
    assert code == {"sha256": digest.hexdigest()[:20], **{name: metadata.version(name) for name in EXTRACTION_LIBRARIES}}
    # the libraries' versions, too, are the ones this process read first (the libraries it imported)
    from gan.metrics import cache

    monkeypatch.setattr(cache, "distribution_version", lambda name: "upgraded")
    assert feature_code(digits) == code
    cache.extraction_library_versions.cache_clear()  # a new process
    try:
        assert feature_code(digits) == {"sha256": code["sha256"], **{name: "upgraded" for name in EXTRACTION_LIBRARIES}}
    finally:
        monkeypatch.undo()
        cache.extraction_library_versions.cache_clear()

    # a data module of one's own in a single file (next to train.py), subclassing a shipped one: its file and the
    # shipped package it inherits its loading from; editor droppings beside it are not code
    own_file = tmp_path / "own_digits_module.py"
    own_file.write_text("from gan.data.digits import DigitsDataModule\n\nclass OwnDigits(DigitsDataModule):\n    pass\n")
    (tmp_path / ".#own_digits_module.py").symlink_to(tmp_path / "gone")  # Emacs' lock link, dangling
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        own = importlib.import_module("own_digits_module").OwnDigits(root=digits.root)
        assert source_files(type(own)) == [*files[:3], own_file.resolve(), *files[3:]]
        before = feature_code(own)
        with open(own_file, "a") as module:
            module.write("# an edit\n")
        assert feature_code(own) == before  # the code this process imported, hashed once
        code_sha256.cache_clear()  # a new process, which imports the edited file
        assert feature_code(own)["sha256"] != before["sha256"]
    finally:
        sys.modules.pop("own_digits_module", None)
        code_sha256.cache_clear()


def test_editing_the_data_modules_package_recomputes_the_cached_real_features(data_dir, tmp_path, monkeypatch):
    import importlib
    import sys

    from gan.metrics.cache import code_sha256

    package = tmp_path / "own_data_package"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "loader.py").write_text("from gan.data.digits import DigitsDataModule\n\n"
                                       "class OwnDigits(DigitsDataModule):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        data = importlib.import_module("own_data_package.loader").OwnDigits(root=str(data_dir))
        data.setup("fit")
        calls = []
        draw = registry.real_sample_indices
        monkeypatch.setattr(registry, "real_sample_indices", lambda data, n, seed: calls.append(n) or draw(data, n, seed))
        fake = torch.rand(50, 1, 28, 28) * 2 - 1

        def score():
            suite = MetricSuite(["fid_digits"], num_samples=50, num_real=200, cache_dir=str(tmp_path / "cache"))
            return suite.evaluate_generator(Replay(fake), data)[0]["fid_digits"]

        first = score()
        assert score() == first and calls == [200]  # read from the cache
        (package / "transforms.py").write_text("SCALE = 2.0  # a module the loader may use\n")
        assert score() == first and calls == [200]  # edited after this process imported it: the old key, rightly
        code_sha256.cache_clear()  # a new process, which would import the edited package
        assert score() == first and calls == [200, 200]  # the package's code changed: recomputed (same data here)
        assert score() == first and calls == [200, 200]  # and cached again
    finally:
        for name in ("own_data_package.loader", "own_data_package"):
            sys.modules.pop(name, None)
        code_sha256.cache_clear()


def test_the_real_feature_cache_key_leaves_out_how_the_data_is_loaded():
    from gan.metrics.cache import data_identity

    data = {"_target_": "gan.data.DigitsDataModule", "root": "data", "sample_shape": [1, 28, 28]}
    loading = {"batch_size": 64, "num_workers": 2, "pin_memory": True, "persistent_workers": True, "on_device": "auto"}
    assert data_identity({**data, **loading}) == data  # the same samples however they are batched, moved or held
    assert data_identity({**data, "root": "elsewhere"}) != data


def test_unknown_metric_and_bad_counts_are_one_line_errors():
    with pytest.raises(ValueError, match=r"unknown metric 'fdi'; expected one of \[.*'fid'"):
        MetricSuite(["fdi"])
    for count in (0, 10**12):  # 1e12 sat counting its batches before a sampling of days (an audit)
        with pytest.raises(ValueError, match=rf"^metrics.num_samples={count}: expected an integer from 1 to 10,000,000$"):
            MetricSuite(["fid_digits"], num_samples=count)
    with pytest.raises(ValueError, match=r"^metrics.num_real=100000000: expected an integer from 1 to 10,000,000$"):
        MetricSuite(["fid_digits"], num_real=10**8)
    assert MetricSuite(["fid_digits"], num_samples=10**7, with_extractors=False).num_samples == 10**7
    with pytest.raises(ValueError, match=r"^metrics.compute.fid_digits=abc: expected the metric's options \(e.g. "
                                         r"metrics.compute.fid_digits.num_samples=5000\) or null for its defaults$"):
        MetricSuite({"fid_digits": "abc"})  # it was an AttributeError: 'str' object has no attribute 'items'
    for empty in ("", "  "):  # the caches were written into the working folder (an audit)
        with pytest.raises(ValueError, match=rf"^metrics.cache_dir='{empty}': expected a folder's path, or null \(no cache\)$"):
            MetricSuite(["fid_digits"], cache_dir=empty, with_extractors=False)

    with pytest.raises(ValueError, match=r"metrics.compute.kid: .*'subset_sze'"):
        MetricSuite({"kid": {"subset_sze": 10}})
    for count in (0, -5, 10**8):  # 0 fell back to metrics.num_samples silently
        with pytest.raises(ValueError, match=rf"^metrics.compute.fid.num_samples={count}: expected an integer from 1 to "
                                             rf"10,000,000, or null \(the suite's metrics.num_samples\)$"):
            MetricSuite({"fid": {"num_samples": count}})
    assert MetricSuite({"fid_digits": {"num_samples": None}}, num_samples=7).fake_count(MetricSuite(["fid_digits"]).metrics[0]) == 7
    for multiple in (0, -1):  # no sample was ever high quality
        with pytest.raises(ValueError, match=rf"^metrics.compute.mode_coverage.std_multiple must be > 0 .*, got {multiple}$"):
            MetricSuite({"mode_coverage": {"std_multiple": multiple}})


def test_a_cache_folder_that_cannot_be_written_is_refused_when_the_suite_is_built(tmp_path):
    a_file = tmp_path / "afile"
    a_file.write_text("")
    with pytest.raises(ValueError, match=rf"^metrics.cache_dir={a_file}/cache: cannot write there \(.*\); expected a folder "
                                         r"this user can create and write, or metrics.cache_dir=null \(no cache\)$"):
        MetricSuite(["fid_digits"], cache_dir=str(a_file / "cache"), with_extractors=False)
    MetricSuite(["mode_coverage"], cache_dir=str(a_file / "cache"), with_extractors=False)  # reads no real features
    MetricSuite(["fid_digits"], cache_dir=str(tmp_path / "new" / "cache"), with_extractors=False)
    assert (tmp_path / "new" / "cache").is_dir()


def test_metric_needs_matching_data(digits):
    with pytest.raises(ValueError, match="mode_coverage needs a 2D Gaussian mixture"):
        MetricSuite(["mode_coverage"]).check_data(digits)
    from gan.data.toy2d import Toy2DDataModule

    with pytest.raises(ValueError, match=r"metric fid_digits scores images, but data toy2d_ring yields points"):
        MetricSuite(["fid_digits"]).check_data(Toy2DDataModule())
    from tests.metrics.conftest import TensorData

    MetricSuite(["fid_digits"]).check_data(TensorData(torch.zeros(4, 1, 32, 32), "mnist"))  # data.resolution=32: resized to 28
    with pytest.raises(ValueError, match=r"fid_digits needs gray digit images .* yields \[2, 28, 28\]"):
        MetricSuite(["fid_digits"]).check_data(TensorData(torch.zeros(4, 2, 28, 28), "mnist"))


def test_every_metric_returns_the_values_it_declares(digits):
    from gan.data.toy2d import Toy2DDataModule
    from gan.metrics.registry import METRICS

    outputs = {
        "fid_digits": MetricSuite(["fid_digits"], num_samples=20, num_real=50).evaluate(
            [digits.train_set.tensors[0][:20]], digits)[0],
        "mode_coverage": MetricSuite(["mode_coverage"]).evaluate([torch.randn(2500, 2)], Toy2DDataModule())[0],
        "stacked_modes": MetricSuite(["stacked_modes"], num_samples=30).evaluate([torch.zeros(30, 3, 28, 28)], digits)[0],
    }
    for name, values in outputs.items():
        assert set(METRICS[name].directions) <= set(values)


def test_best_monitor_follows_each_metric_direction():
    assert best_monitor(None, ["fid", "kid"]) == ("val/fid", "min")
    assert best_monitor(None, {"is": {}}) == ("val/is", "max")
    assert best_monitor("prc/recall", ["fid", "prc"]) == ("val/prc/recall", "max")
    assert best_monitor("val/kid", ["fid", "kid"]) == ("val/kid", "min")
    assert best_monitor(None, ["mode_coverage"]) == ("val/mode_coverage/modes", "max")
    assert best_monitor(None, []) == (None, "min")
    # a diagnostic is no default (its highest authenticity is a generator far from the data); set on purpose, it is
    assert best_monitor(None, ["memorization", "fid"]) == ("val/fid", "min")
    assert best_monitor(None, ["memorization"]) == (None, "min")
    assert best_monitor("memorization/authenticity", ["memorization"]) == ("val/memorization/authenticity", "max")
    with pytest.raises(ValueError, match=r"metrics.monitor='is' is not computed by the selected metrics \['fid'\]"):
        best_monitor("is", ["fid"])


def test_every_data_config_has_a_metrics_preset_and_every_metric_a_file():
    conf = PROJECT_ROOT / "conf"
    data = {p.stem for p in (conf / "data").glob("*.yaml")}
    presets = {p.stem for p in (conf / "metrics").glob("*.yaml")}
    assert data <= presets, f"add conf/metrics/<data>.yaml for {sorted(data - presets)}"
    assert set(METRICS) <= presets


@pytest.mark.parametrize("data, compute, monitor", [("digits", ["fid_digits"], "val/fid_digits"),
                                                    ("toy2d_grid", ["mode_coverage"], "val/mode_coverage/modes")])
def test_train_config_picks_metrics_per_data(make_cfg, data, compute, monitor):
    from tests.conftest import tiny_overrides

    cfg = make_cfg(tiny_overrides("gan" if data.startswith("toy") else "dcgan", data))
    assert list(cfg.metrics.compute) == compute
    assert cfg.callbacks.best_checkpoint.monitor == monitor
    chosen = make_cfg(tiny_overrides("dcgan") + ["metrics=[fid,kid]", "metrics.compute.kid.subset_size=50"])
    assert list(chosen.metrics.compute) == ["fid", "kid"] and chosen.metrics.compute.kid.subset_size == 50
    assert chosen.callbacks.best_checkpoint.mode == "min" and chosen.callbacks.best_checkpoint.monitor == "val/fid"


# ------------------------------------------------------------------------------------- protocol records
def test_protocol_records_the_reference_split_and_equal_counts_for_knn_metrics(digits):
    from torch_fidelity.metric_prc import prc_features_to_metric

    from tests.metrics.conftest import TensorData

    compute = {"prc": {"extractor": "digit_classifier"}, "density_coverage": {"extractor": "digit_classifier"},
               "fid_digits": {}}
    suite = MetricSuite(compute, num_samples=200, num_real=1000)
    fakes = digits.train_set.tensors[0][torch.randperm(5000, generator=torch.Generator().manual_seed(3))[:200]]
    values, protocol = suite.evaluate([fakes], digits)
    assert protocol["reference"] == {"split": "all", "num_real": 1000, "seed": 0}  # the embedded digits have no splits
    assert protocol["metrics"]["prc"]["num_real"] == protocol["metrics"]["density_coverage"]["num_real"] == 200
    assert protocol["metrics"]["fid_digits"]["num_real"] == 1000
    extractor = suite.extractors["digit_classifier"]
    real = extractor(digits.train_set.tensors[0][registry.real_sample_indices(digits, 200, 0)])["features"]
    expected = prc_features_to_metric(extractor(fakes)["features"], real, prc_neighborhood=3, verbose=False)
    assert (values["prc/precision"], values["prc/recall"]) == (expected["precision"], expected["recall"])

    test_split = TensorData(digits.train_set.tensors[0][:300], "mnist", split="test")
    assert suite.evaluate([fakes], test_split)[1]["reference"]["split"] == "test"


def test_knn_metrics_cut_the_fakes_too_when_the_reals_are_fewer(digits, caplog):
    """Each k-NN ball's reach depends on how many points there are: 300 fakes against 200 reals inflated coverage
    (it can only rise with more fakes), where the README promises as many of each."""
    from gan.metrics.functional import density_coverage

    suite = MetricSuite({"density_coverage": {"extractor": "digit_classifier"}, "fid_digits": {}}, num_samples=300, num_real=200)
    fakes = digits.train_set.tensors[0][torch.randperm(5000, generator=torch.Generator().manual_seed(4))[:300]]
    with caplog.at_level("WARNING", logger="gan"):
        values, protocol = suite.evaluate([fakes], digits)
        suite.evaluate([fakes], digits)  # said once per suite, not at every evaluation of a run
    assert (protocol["metrics"]["density_coverage"]["num_fake"], protocol["metrics"]["density_coverage"]["num_real"]) == (200, 200)
    assert protocol["metrics"]["fid_digits"]["num_fake"] == 300 and protocol["metrics"]["fid_digits"]["num_real"] == 200
    extractor = suite.extractors["digit_classifier"]
    real = extractor(digits.train_set.tensors[0][registry.real_sample_indices(digits, 200, 0)])["features"]
    expected = density_coverage(extractor(fakes[:200])["features"], real, 5)
    assert values["density_coverage/coverage"] == expected["coverage"] and values["density_coverage/density"] == expected["density"]
    assert [r.getMessage() for r in caplog.records] == ["density_coverage compares as many real as fake samples: scoring 200 of "
                                                        "each (200 real samples; 300 fakes asked for)"]


def test_kid_records_the_subset_size_it_used(digits):
    """Subsets shrink to the sample count; the protocol recorded the option (1,000) where 150 were used."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    suite = MetricSuite({"kid": {"extractor": "digit_classifier", "subsets": 4}}, num_samples=150, num_real=400)
    fakes = digits.train_set.tensors[0][torch.randperm(5000, generator=torch.Generator().manual_seed(5))[:150]]
    values, protocol = suite.evaluate([fakes], digits)
    assert protocol["metrics"]["kid"]["subset_size"] == 150 and protocol["metrics"]["kid"]["num_real"] == 400
    extractor = suite.extractors["digit_classifier"]
    real = extractor(digits.train_set.tensors[0][registry.real_sample_indices(digits, 400, 0)])["features"]
    expected = kid_features_to_metric(extractor(fakes)["features"], real, kid_subsets=4, kid_subset_size=150, rng_seed=2020, verbose=False)
    assert values["kid"] == expected["kernel_inception_distance_mean"]
    assert MetricSuite({"kid": {"subset_size": 50}}, with_extractors=False).protocol({"kid": 150}, 400)["metrics"]["kid"]["subset_size"] == 50
    # fewer reals than fakes: the reals bound it (the fakes' count was recorded: a mutation)
    assert MetricSuite({"kid": {}}, with_extractors=False).protocol({"kid": 800}, 300)["metrics"]["kid"]["subset_size"] == 300


class LinearGenerator(torch.nn.Module):
    """Draws its codes with torch.randn(n, ...) as the real generators do, so a batch's codes depend on n."""

    num_classes = None

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(100, 28 * 28)  # DCGAN's latent size

    @torch.no_grad()
    def sample(self, n, generator=None, labels=None):
        return torch.tanh(self.net(torch.randn(n, 100, generator=generator))).view(n, 1, 28, 28)


def test_a_metrics_value_does_not_depend_on_the_metrics_selected_beside_it(digits):
    """550 fakes in batches of 100: the last batch of 50 drew torch.randn(50, 100) alone and the first 50 rows of
    torch.randn(100, 100) when a companion metric asked for 1,000, which are other codes on the CPU (torch fills
    a draw 16 numbers at a time and the tail of 5,000 another way)."""
    torch.manual_seed(0)
    generator = LinearGenerator()
    assert not torch.equal(torch.randn(50, 100, generator=torch.Generator().manual_seed(1)),
                           torch.randn(100, 100, generator=torch.Generator().manual_seed(1))[:50])  # why it mattered
    alone = MetricSuite({"fid_digits": {"num_samples": 550}}, num_real=600).evaluate_generator(generator, digits)[0]
    beside = MetricSuite({"fid_digits": {"num_samples": 550}, "kid": {"extractor": "digit_classifier", "num_samples": 1000}},
                         num_real=600).evaluate_generator(generator, digits)[0]
    assert alone["fid_digits"] == beside["fid_digits"]
    # the extractor's sample count is the most any of its metrics asks, whatever their order (the last one's was
    # taken by a mutation: kid scored 550 fakes)
    first, protocol = MetricSuite({"kid": {"extractor": "digit_classifier", "num_samples": 1000},
                                   "fid_digits": {"num_samples": 550}}, num_real=600).evaluate_generator(generator, digits)
    assert protocol["metrics"]["kid"]["num_fake"] == 1000 and protocol["metrics"]["fid_digits"]["num_fake"] == 550
    assert first["fid_digits"] == alone["fid_digits"] and first["kid"] == beside["kid"]


def test_real_feature_cache_follows_the_content_of_an_image_folder(tmp_path, monkeypatch):
    from gan.data import ImageFolderDataModule
    from tests.metrics.conftest import random_images, write_folder

    folder = write_folder(random_images(12, channels=1, size=28, seed=0), tmp_path / "images")
    calls = []
    draw = registry.real_sample_indices
    monkeypatch.setattr(registry, "real_sample_indices", lambda data, n, seed: calls.append(n) or draw(data, n, seed))

    def score():
        data = ImageFolderDataModule(path=str(folder), resolution=28, channels=1)
        data.setup("fit")
        suite = MetricSuite({"density_coverage": {"extractor": "digit_classifier"}}, num_samples=12, num_real=100,
                            cache_dir=str(tmp_path / "cache"))
        return suite.evaluate([random_images(12, channels=1, size=28, seed=9)], data, {"path": str(folder)})

    score()
    score()
    assert len(calls) == 1  # the same folder: read from the cache
    write_folder(random_images(1, channels=1, size=28, seed=5), folder)  # 0000.png replaced, same path
    score()
    assert len(calls) == 2
    write_folder(random_images(13, channels=1, size=28, seed=0), folder)  # one more image
    assert score()[1]["reference"]["num_real"] == 13 and len(calls) == 3



def test_an_image_replaced_by_one_of_the_same_size_changes_the_data_s_fingerprint(tmp_path):
    """A file rewritten with other bytes of the same length (an image re-encoded, a fixed-size format) is only told
    by its modification time: the cached real features of the old images were reused (a mutation audit: the
    fingerprint held the sizes alone)."""
    import os
    from types import SimpleNamespace

    from gan.metrics.cache import data_content

    paths = [tmp_path / f"{k:04d}.png" for k in range(3)]
    for k, path in enumerate(paths):
        path.write_bytes(bytes([k]) * 64)
    data = SimpleNamespace(train_set=SimpleNamespace(paths=[str(p) for p in paths]))  # what an image folder's set holds
    before = data_content(data)
    assert before["split"] == "all" and before["files"]["count"] == 3
    assert data_content(data) == before  # nothing changed: the same fingerprint
    then = paths[1].stat().st_mtime_ns
    paths[1].write_bytes(bytes([9]) * 64)  # other content, the same size
    os.utime(paths[1], ns=(then + 10**9, then + 10**9))  # a second later (a coarse file-system clock may not tick)
    after = data_content(data)
    assert paths[1].stat().st_size == 64 and after["files"]["count"] == 3
    assert after["files"]["sha256"] != before["files"]["sha256"]

def test_stacked_mnist_content_names_the_source_it_used(data_dir):
    from gan.data import StackedMNISTDataModule
    from gan.metrics.cache import data_content

    data = StackedMNISTDataModule(root=str(data_dir), num_samples=50, source="auto")  # no MNIST files here
    data.setup("fit")
    assert data_content(data) == {"split": "all", "source": "digits"}


def test_no_progress_bar_is_drawn_when_no_metric_wants_samples(capsys):
    """evaluate.py metrics=none drew an empty "fake features: 0sample" bar (an audit)."""
    suite = MetricSuite([], progress=True, with_extractors=False)
    suite._extract_shared(lambda batch, start, size: (torch.zeros(size, 2), None), 0, {}, "fake features")
    assert "fake features" not in capsys.readouterr().err
    suite._extract_shared(lambda batch, start, size: (torch.zeros(size, 2), None), 3, {}, "fake features")
    assert "fake features" in capsys.readouterr().err  # a bar where there are samples


def test_a_higher_is_better_monitor_keeps_the_checkpoint_with_the_highest_value(make_cfg):
    """toy2d's mode coverage counts modes: more is better, so the best checkpoint's mode is "max" (a resolver that
    always said "min" kept the worst checkpoint; a mutation audit). The config's mode follows the metric's direction."""
    from tests.conftest import tiny_overrides

    cfg = make_cfg(tiny_overrides("gan", "toy2d_grid"))
    assert cfg.callbacks.best_checkpoint.monitor == "val/mode_coverage/modes"
    assert cfg.callbacks.best_checkpoint.mode == "max"
    recall = make_cfg(tiny_overrides("dcgan") + ["metrics=[fid,prc]", "metrics.monitor=prc/recall"])
    assert recall.callbacks.best_checkpoint.mode == "max" and recall.callbacks.best_checkpoint.monitor == "val/prc/recall"
