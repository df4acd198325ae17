"""ResNet networks of SN-GAN / WGAN-GP: shapes, the papers' layouts, option errors, and every image variant
training a few finite steps under arch=resnet."""
import math

import pytest
import torch

from gan.nets import ResNetDiscriminator, ResNetGenerator
from gan.nets.resnet import DiscriminatorBlock
from gan.utils.errors import ConfigError
from tests.conftest import CONF_DIR, MODELS, tiny_overrides

#: the variants built on the DCGAN classes: arch=resnet swaps their networks
DCGAN_FAMILY = [m for m in MODELS if "gan.nets.DCGANGenerator" in (CONF_DIR / "model" / f"{m}.yaml").read_text()]
TINY_RESNET = ["arch=resnet", "model.generator.width=4", "model.discriminator.width=4"]


@pytest.mark.parametrize("size", [28, 32, 48, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_for_every_resolution_and_channel_count(size, channels):
    shape = (channels, size, size)
    g, d = ResNetGenerator(8, shape, width=4), ResNetDiscriminator(shape, width=4)
    x = g(torch.randn(3, 8))
    assert x.shape == (3, *shape) and x.abs().max() <= 1.0
    assert d(x).shape == (3,)


@pytest.mark.parametrize("conditioning", [("batchnorm", "projection"), ("embedding", "concat"), ("embedding", "auxiliary")])
def test_conditional_networks(conditioning):
    g_cond, d_cond = conditioning
    g = ResNetGenerator(8, (3, 32, 32), width=4, num_classes=10, conditioning=g_cond)
    d = ResNetDiscriminator((3, 32, 32), width=4, num_classes=10, conditioning=d_cond, spectral_norm=True)
    labels = torch.tensor([0, 3, 9])
    x = g(torch.randn(3, 8), labels)
    out = d.evaluate(x, labels if d.takes_labels else None)
    assert x.shape == (3, 3, 32, 32) and out.logits.shape == (3,)
    assert (out.class_logits is not None) == (d_cond == "auxiliary")


def conditional_resnet_generator(shifts: bool = False) -> ResNetGenerator:
    """A small class-conditional ResNet G whose conditional batch norms scale (and, with ``shifts``, shift) each class
    differently: their initial identity would make every label alike."""
    torch.manual_seed(0)
    g = ResNetGenerator(8, (1, 28, 28), width=4, num_classes=10, conditioning="batchnorm")
    with torch.no_grad():
        for m in g.modules():
            if hasattr(m, "scale") and isinstance(m.scale, torch.nn.Embedding):
                m.scale.weight.normal_(1.0, 0.5)
                if shifts:
                    m.shift.weight.normal_(0.0, 0.5)
    return g


def test_conditional_batch_norm_makes_the_class_matter():
    g = conditional_resnet_generator()
    z = torch.randn(4, 8)
    assert not torch.allclose(g(z, torch.zeros(4, dtype=torch.long)), g(z, torch.ones(4, dtype=torch.long)))


def downs(d):
    return [m.down for m in d.modules() if isinstance(m, DiscriminatorBlock)]


def widths(d):
    return [m.conv2.out_channels for m in d.modules() if isinstance(m, DiscriminatorBlock)]


def test_the_papers_layouts():
    # SN-GAN Table 4 (CIFAR-10): D down 128, down 128, 128, 128; G 4x4x256 and three up-blocks of 256
    d = ResNetDiscriminator((3, 32, 32), width=128)
    assert downs(d) == [True, True, False, False] and widths(d) == [128] * 4
    g = ResNetGenerator(128, (3, 32, 32), width=256)
    assert g.input.out_features == 4 * 4 * 256 and [b.conv2.out_channels for b in g.blocks] == [256] * 3
    assert sum(p.numel() for p in d.parameters()) == pytest.approx(1.06e6, rel=0.02)  # mimicry's SNGAN-32 D: ~1.05M
    # SN-GAN Table 5 (STL-10, 48 px): D down 64, 128, 256, 512, then 1024; G 6x6x512 -> 256 -> 128 -> 64
    d = ResNetDiscriminator((3, 48, 48), width=64, max_width_multiplier=16, feature_size=4, extra_blocks=1)
    assert downs(d) == [True] * 4 + [False] and widths(d) == [64, 128, 256, 512, 1024]
    g = ResNetGenerator(128, (3, 48, 48), width=64, max_width_multiplier=8)
    assert g.input.out_features == 6 * 6 * 512 and [b.conv2.out_channels for b in g.blocks] == [256, 128, 64]
    # digits: 28 -> 14 -> 7, then two blocks at 7x7
    assert downs(ResNetDiscriminator((1, 28, 28), width=4)) == [True, True, False, False]


def test_spectral_norm_and_layer_norm_options():
    d = ResNetDiscriminator((3, 32, 32), width=4, spectral_norm=True)
    layers = [m for m in d.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert layers and all(hasattr(m, "parametrizations") for m in layers)
    d = ResNetDiscriminator((3, 32, 32), width=4, norm="layer")
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in d.modules()) == 7  # none before the first conv


def test_residual_convs_use_the_released_xavier_init():
    torch.manual_seed(0)
    g = ResNetGenerator(8, (3, 32, 32), width=64)
    weight = g.blocks[0].conv1.weight
    bound = math.sqrt(2) * math.sqrt(6 / (64 * 9 + 64 * 9))
    assert weight.abs().max() <= bound and weight.abs().max() > 0.95 * bound


def test_a_wrong_image_size_names_both_sizes():
    d = ResNetDiscriminator((1, 32, 32), width=4)
    with pytest.raises(ConfigError, match=r"\(1, 32, 32\).*\(1, 28, 28\)"):
        d(torch.randn(2, 1, 28, 28))


@pytest.mark.parametrize("shape", [(3, 30, 30), (3, 36, 36), (3, 32, 48)])
def test_unsupported_resolutions_are_one_line_errors(shape):
    with pytest.raises(ConfigError, match=r"ResNetGenerator needs (an image size|square images).*got") as error:
        ResNetGenerator(8, shape)
    assert "\n" not in str(error.value)


def test_vector_data_and_foreign_options_are_config_errors():
    with pytest.raises(ConfigError, match=r"ResNetDiscriminator is an image network.*\[2\].*arch=null"):
        ResNetDiscriminator((2,))
    with pytest.raises(ConfigError, match=r"ResNetGenerator does not take hidden=\[1200, 1200\]"):
        ResNetGenerator(8, (1, 28, 28), hidden=[1200, 1200])
    with pytest.raises(ConfigError, match=r"norm='layer', expected 'batch'"):
        ResNetGenerator(8, (1, 28, 28), norm="layer", num_classes=10, conditioning="batchnorm")
    with pytest.raises(ConfigError, match=r"unknown pooling 'max'"):
        ResNetDiscriminator((1, 28, 28), pooling="max")


def test_arch_resnet_on_vector_data_fails_before_training(make_cfg):
    from gan.utils.instantiate import build

    cfg = make_cfg(tiny_overrides("sngan", data="toy2d_grid") + TINY_RESNET)
    with pytest.raises(ConfigError, match=r"image network.*vector \[2\]"):
        build(cfg.model.generator)


def test_a_data_model_size_mismatch_fails_before_training_naming_both(make_cfg):
    from train import train

    cfg = make_cfg(tiny_overrides("sngan") + TINY_RESNET + ["model.generator.sample_shape=[1,32,32]"])
    with pytest.raises(ValueError, match=r"\[1, 28, 28\].*\[1, 32, 32\]"):
        train(cfg)


@pytest.mark.parametrize("model", DCGAN_FAMILY)
def test_every_image_variant_trains_finite_steps_under_arch_resnet(make_cfg, model):
    from train import train

    cfg = make_cfg(tiny_overrides(model, steps=2) + TINY_RESNET)
    metrics, objects = train(cfg)
    assert type(objects["module"].generator).__name__ == "ResNetGenerator"
    losses = {k: v for k, v in metrics.items() if k.endswith("/loss")}
    assert {"train/d/loss", "train/g/loss"} <= set(losses) and all(math.isfinite(v) for v in losses.values())


def test_generator_block_adds_the_upsampled_shortcut_to_the_residual_path():
    """(a mutation audit) the block returned only its residual path, dropping the shortcut sum."""
    import torch.nn.functional as F
    from gan.nets.resnet import GeneratorBlock

    torch.manual_seed(0)
    block = GeneratorBlock(4, 6, torch.nn.BatchNorm2d, False)
    with torch.no_grad():
        block.conv2.weight.zero_()
        block.conv2.bias.zero_()
    x = torch.randn(3, 4, 5, 5)
    expected = block.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))
    assert expected.abs().max() > 0.1
    torch.testing.assert_close(block(x), expected)


@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_global_pool_sums_or_averages_the_activated_map(pooling):
    """(a mutation audit) sum and mean pooling swapped."""
    from gan.nets.resnet import GlobalPool

    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5)
    h = torch.nn.functional.leaky_relu(x, 0.1)
    expected = h.sum(dim=(2, 3)) if pooling == "sum" else h.mean(dim=(2, 3))
    torch.testing.assert_close(GlobalPool(0.1, pooling)(x), expected)


def test_conditional_batch_norm_generator_gives_each_sample_its_own_label():
    """(a mutation audit) the second norm of each block got the labels of other samples (flipped batch)."""
    g = conditional_resnet_generator(shifts=True)
    g.eval()
    z, labels = torch.randn(4, 8), torch.tensor([1, 4, 7, 9])
    with torch.no_grad():
        batch = g(z, labels)
        for i in range(4):
            torch.testing.assert_close(batch[i], g(z[i:i + 1], labels[i:i + 1])[0])


@pytest.mark.parametrize("norm,layer", [("batch", torch.nn.BatchNorm2d), ("layer", torch.nn.GroupNorm),
                                        ("none", torch.nn.Identity)])
def test_generator_output_starts_with_the_norm(norm, layer):
    """(a mutation audit) the output stage lost its normalization (norm -> ReLU -> conv3x3)."""
    g = ResNetGenerator(8, (1, 28, 28), width=4, norm=norm)
    assert isinstance(g.output[0], layer) and isinstance(g.output[1], torch.nn.ReLU)
    assert isinstance(g.output[2], torch.nn.Conv2d)
