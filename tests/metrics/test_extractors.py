"""DINOv2 and CLIP features through torch-fidelity's extractors from local weights files (random weights in
the real files' formats, the real code path), checked against torch-fidelity called directly on the same
folders; clean-fid's resize; weights that are missing fail before anything starts, in one line."""
from __future__ import annotations

import warnings
from unittest import mock

import pytest
import torch

from gan.metrics import MetricSuite, MetricsUnavailableError, image_folder_batches
from gan.metrics import features as features_module
from gan.metrics.features import clean_resize
from tests.metrics.conftest import Recording, TensorData, random_images, write_folder
from tests.metrics.test_formulas import prdc_reference

N = 6  # every image is resized to 224 px for a 12-block ViT (~0.15 s each on a CPU core): keep it small


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


@pytest.fixture
def folders(tmp_path):
    fake, real = random_images(N, seed=1), random_images(N, seed=2, smooth=True)
    return fake, real, write_folder(fake, tmp_path / "fake"), write_folder(real, tmp_path / "real")


def torch_fidelity_metrics(fake_dir, real_dir, extractor: str, **kwargs) -> dict[str, float]:
    import torch_fidelity

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch_fidelity.calculate_metrics(input1=str(fake_dir), input2=str(real_dir), cuda=False, fid=True, kid=True,
                                                prc=True, feature_extractor=extractor, kid_subsets=3, kid_subset_size=N,
                                                cache=False, verbose=False, **kwargs)


@pytest.mark.slow  # 24 ViT-S passes at 224 px: ~8 s on an idle 2-core CPU (the Inception twin is slow too)
def test_dinov2_from_local_weights_equals_torch_fidelity_on_the_same_folders(folders, dinov2_weights):
    from gan.metrics.dinov2 import DinoVisionTransformer

    fake_images, real_images, fake_dir, real_dir = folders
    compute = {"fd_dinov2": {}, "kid": {"extractor": "dinov2", "subsets": 3, "subset_size": N},
               "prc": {"extractor": "dinov2"}, "density_coverage": {"extractor": "dinov2", "neighborhood": 3}}
    suite = MetricSuite(compute, num_samples=N, num_real=N, batch_size=N, dinov2_model="vit-s-14",
                        dinov2_weights=str(dinov2_weights))
    suite.extractors["dinov2"] = recording = Recording(suite.extractors["dinov2"])
    values, protocol = suite.evaluate(image_folder_batches(fake_dir, 3, N)[0], TensorData(real_images))
    assert len(recording.outputs) == 2  # one pass over the fakes, one over the reals, shared by four metrics

    def hub_load(repo, model, **kwargs):  # what torch.hub would fetch from GitHub, built offline from the same file
        assert (repo, model) == ("facebookresearch/dinov2", "dinov2_vits14")
        network = DinoVisionTransformer("vit-s-14", random_init=False)
        network.load_state_dict(torch.load(dinov2_weights, weights_only=True))
        return network

    with mock.patch("torch.hub.load", hub_load):
        direct = torch_fidelity_metrics(fake_dir, real_dir, "dinov2-vit-s-14")
    assert rel(values["fd_dinov2"], direct["frechet_inception_distance"]) < 1e-3
    assert rel(values["kid"], direct["kernel_inception_distance_mean"]) < 1e-3
    assert (values["prc/precision"], values["prc/recall"]) == (direct["precision"], direct["recall"])

    fake, real = (output["dinov2"] for output in recording.outputs)
    assert fake.shape == (N, 384) and fake.std() > 1e-3  # the random ViT gives informative features
    density, coverage = prdc_reference(fake.double().numpy(), real.double().numpy(), k=3)
    assert (values["density_coverage/density"], values["density_coverage/coverage"]) == pytest.approx((density, coverage))
    assert protocol["extractors"]["dinov2"]["extractor"] == "torch-fidelity dinov2-vit-s-14"
    assert protocol["extractors"]["dinov2"]["weights"] == dinov2_weights.name
    assert protocol["metrics"]["density_coverage"] == {"num_fake": N, "extractor": "dinov2", "num_real": N, "neighborhood": 3}


def test_clip_from_local_weights_equals_torch_fidelity_on_the_same_folders(folders, clip_weights):
    fake_images, real_images, fake_dir, real_dir = folders
    suite = MetricSuite(["fd_clip"], num_samples=N, num_real=N, batch_size=N, clip_weights=str(clip_weights))
    values, protocol = suite.evaluate(image_folder_batches(fake_dir, 3, N)[0], TensorData(real_images))
    direct = torch_fidelity_metrics(fake_dir, real_dir, "clip-vit-b-32", feature_extractor_weights_path=str(clip_weights))
    assert values["fd_clip"] > 0 and rel(values["fd_clip"], direct["frechet_inception_distance"]) < 1e-3
    assert protocol["extractors"]["clip"]["weights"] == clip_weights.name


def test_missing_or_wrong_weights_fail_before_anything_runs(monkeypatch, tmp_path, dinov2_weights):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_hub"))
    monkeypatch.setattr(features_module, "can_reach", lambda *a, **k: False)
    for metrics, option in ((["fd_dinov2"], "metrics.dinov2_weights"), (["fd_clip"], "metrics.clip_weights"),
                            ({"density_coverage": {"extractor": "dinov2"}}, "metrics.dinov2_weights")):
        with pytest.raises(MetricsUnavailableError, match=f"unreachable; .* pass {option}=/path/to/it") as error:
            MetricSuite(metrics)
        assert "\n" not in str(error.value)
    with pytest.raises(MetricsUnavailableError, match=r"metrics.dinov2_weights=/no/file.pth is not a file"):
        MetricSuite(["fd_dinov2"], dinov2_weights="/no/file.pth")
    with pytest.raises(ValueError, match=r"metrics.dinov2_model='vit-x-14' is not a DINOv2 backbone"):
        MetricSuite(["fd_dinov2"], dinov2_model="vit-x-14", dinov2_weights=str(dinov2_weights))
    wrong = MetricSuite(["fd_dinov2"], dinov2_model="vit-b-14", dinov2_weights=str(dinov2_weights))
    with pytest.raises(MetricsUnavailableError, match="does not hold DINOv2 vit-b-14 weights"):
        wrong.extractors["dinov2"].net  # the ViT-S file for a ViT-B: found when the network is first built
    with pytest.raises(ValueError, match=r"metrics.compute.fid.extractor='dinov2'; expected one of \['inception'\]"):
        MetricSuite({"fid": {"extractor": "dinov2"}})


def test_missing_dinov2_weights_stop_training_before_it_starts(make_cfg, tmp_path, monkeypatch):
    from tests.conftest import tiny_overrides
    from train import train

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_hub"))
    monkeypatch.setattr(features_module, "can_reach", lambda *a, **k: False)
    with pytest.raises(MetricsUnavailableError, match="metrics.dinov2_weights"):
        train(make_cfg(tiny_overrides("dcgan") + ["metrics=[fd_dinov2]", "metrics.every_n_generator_steps=2"]))
    assert not (tmp_path / "run" / "checkpoints").exists()


# ------------------------------------------------------------------------------------------- resize
def test_clean_resize_antialiases_where_torch_fidelity_aliases():
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    checkerboard = ((torch.arange(64)[:, None] + torch.arange(64)[None]) % 2 * 255).to(torch.uint8).expand(1, 3, 64, 64)
    clean = clean_resize(checkerboard, 16)  # a 1-pixel pattern 4x down: antialiasing leaves flat mid-gray
    aliased = interpolate_bilinear_2d_like_tensorflow1x(checkerboard.float(), size=(16, 16), align_corners=False)
    assert clean.dtype == torch.float32 and clean.shape == (1, 3, 16, 16)
    assert (clean - 127.5).abs().max() < 2  # every output pixel averages black and white ...
    assert (aliased - 127.5).abs().min() > 100  # ... where point sampling picks one colour of the pattern
    flat = torch.full((2, 1, 8, 8), 77, dtype=torch.uint8)
    assert torch.equal(clean_resize(flat, 24), torch.full((2, 1, 24, 24), 77.0))  # upsampling keeps a flat image


def test_clean_resize_keeps_bicubic_overshoot_inside_the_pixel_range():
    # PIL's bicubic filter rings at a black/white edge (-11.9 and 266.9 for 32 -> 17 px): pixels stay in [0, 255]
    edge = torch.zeros(1, 1, 32, 32, dtype=torch.uint8)
    edge[..., 16:] = 255
    resized = clean_resize(edge, 17)
    assert resized.min() == 0 and resized.max() == 255


def test_digit_images_larger_than_28_px_are_antialiased_and_rgb_is_read_as_gray():
    """fid_digits at 32 or 64 px: a 1-pixel checkerboard brought to 28 px averages to mid-gray (0.73 from 0 without
    antialiasing, a mutation that survived); three channels are read as their mean gray level (data.channels=3)."""
    from gan.metrics.features import DigitFeatures, to_digit_size

    checkerboard = ((torch.arange(64)[:, None] + torch.arange(64)[None]) % 2 * 2.0 - 1).expand(1, 1, 64, 64)
    assert to_digit_size(checkerboard).abs().max() < 0.05
    digits = DigitFeatures()
    torch.manual_seed(0)
    rgb = torch.rand(4, 3, 28, 28) * 2 - 1
    assert torch.allclose(digits(rgb)["features"], digits(rgb.mean(1, keepdim=True))["features"], atol=1e-6)
    assert not torch.allclose(digits(rgb)["features"], digits(rgb[:, :1])["features"], atol=1e-2)


def test_clean_resize_reaches_the_network_without_requantisation(dinov2_weights):
    """At the network's own input size both rules leave the pixels alone, so both give the same features; at
    16 px they differ, and the protocol says which rule produced a value."""
    images, small = random_images(1, size=224, seed=3), random_images(1, size=16, seed=3)
    extractor = features_module.DinoV2Features(weights=str(dinov2_weights), model="vit-s-14")
    default = {"native": extractor(images)["dinov2"], "small": extractor(small)["dinov2"], **extractor.protocol()}
    extractor.resize = "clean"  # the same network, the other rule
    clean = {"native": extractor(images)["dinov2"], "small": extractor(small)["dinov2"], **extractor.protocol()}
    torch.testing.assert_close(default["native"], clean["native"], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(default["small"], clean["small"], atol=1e-3)
    assert "clean-fid" in clean["resize"] and "TF1" in default["resize"]
    with pytest.raises(ValueError, match=r"metrics.resize='bicubic' is not a resize rule; expected one of"):
        MetricSuite(["fid_digits"], resize="bicubic")
