"""benchmarks/step_cost.py: each row times the networks it names, and its records hold what the README quotes."""
import json

import pytest
import torch

from benchmarks import step_cost
from gan.augment import AdaptiveAugment, DiffAugment
from gan.nets import DCGANDiscriminator, DCGANGenerator, R3GANGenerator, ResNetDiscriminator, ResNetGenerator


def count(network: torch.nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


def test_a_network_row_times_the_widths_it_names_and_records_them(tmp_path):
    out = tmp_path / "cost.jsonl"
    step_cost.main(["--repeats", "3", "--only", "resnet_32", "r3gan_64", "--out", str(out)])
    records = {r["row"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(records) == {"generator_update/resnet_32", "generator_update/r3gan_64"}
    resnet, r3gan = records["generator_update/resnet_32"], records["generator_update/r3gan_64"]
    # the networks of the classes at the named widths (sngan's latent 128, r3gan's 64; digits are 1x28x28), built
    # here without the config: an override the composition dropped would give the config's widths (256 / 128, 768)
    assert resnet["params_g"] == count(ResNetGenerator(128, (1, 28, 28), width=32))
    assert resnet["params_d"] == count(ResNetDiscriminator((1, 28, 28), width=32, spectral_norm=True, feature_size=8,
                                                           extra_blocks=2))
    assert r3gan["params_g"] == count(R3GANGenerator(64, (1, 28, 28), width=64))
    for record in records.values():
        assert len(record["ms"]) == 3 and record["min_ms"] <= record["median_ms"] <= record["max_ms"]
        assert record["median_ms"] == pytest.approx(sorted(record["ms"])[1], abs=1e-3)
        assert record["batch"] == 64 and record["threads"] == 1 and record["commit"]


def test_the_augmented_discriminator_rows_run_the_augmentations_the_readme_names():
    module = step_cost.build(step_cost.DCGAN_SNGAN + ["augment=ada"])
    assert isinstance(module.augment, AdaptiveAugment) and module.augment.policy == ("color", "translation", "cutout")
    assert isinstance(step_cost.build(step_cost.DCGAN_SNGAN + ["augment=diffaugment"]).augment, DiffAugment)
    assert count(module.discriminator) == count(DCGANDiscriminator((1, 28, 28), width=64, norm="none", spectral_norm=True))
    assert count(module.generator) == count(DCGANGenerator(128, (1, 28, 28), width=64))


def test_an_unknown_row_is_refused_naming_the_rows(capsys):
    with pytest.raises(SystemExit) as exited:
        step_cost.main(["--only", "resnet_16"])
    assert exited.value.code == 2
    assert "--only resnet_16: expected discriminator or one of dcgan, resnet_cifar" in capsys.readouterr().err
