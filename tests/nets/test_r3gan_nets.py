"""R3GAN image networks: shapes, fix-up initialization, the bilinear resamplers, R1/R2's double backward."""
import math

import pytest
import torch
import torch.nn.functional as F

from gan.nets import R3GANDiscriminator, R3GANGenerator
from gan.nets.r3gan import LEAKY_RELU_GAIN, Resample, ResidualBlock
from gan.utils.errors import ConfigError

TINY = dict(width=8, group_channels=4)


@pytest.mark.parametrize("size", [28, 32, 48, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_for_every_resolution(size, channels):
    shape = (channels, size, size)
    g, d = R3GANGenerator(8, shape, **TINY), R3GANDiscriminator(shape, **TINY)
    x = g(torch.randn(3, 8))
    assert x.shape == (3, *shape) and d(x).shape == (3,)
    doublings = {28: 2, 32: 3, 48: 3, 64: 4}[size]
    assert len(g.stages) == len(d.blocks) == doublings + 1  # one stage per resolution, base to image


def test_class_conditional_networks():
    g = R3GANGenerator(8, (3, 32, 32), num_classes=10, **TINY)
    d = R3GANDiscriminator((3, 32, 32), num_classes=10, **TINY)
    labels = torch.tensor([1, 5, 9])
    assert d(g(torch.randn(3, 8), labels), labels).shape == (3,)
    assert d.projection is not None and g.label_embedding.num_embeddings == 10


def residual_blocks(net):
    return [m for m in net.modules() if isinstance(m, ResidualBlock)]


@pytest.mark.parametrize("build", [lambda: R3GANGenerator(8, (3, 32, 32), **TINY), lambda: R3GANDiscriminator((1, 28, 28), **TINY)])
def test_fixup_init_makes_every_fresh_residual_block_the_identity(build):
    torch.manual_seed(0)
    net = build()
    blocks = residual_blocks(net)
    assert len(blocks) == 2 * (len(net.stages) if hasattr(net, "stages") else len(net.blocks))
    for block in blocks:
        assert torch.count_nonzero(block.residual[-1].weight) == 0  # the last layer is zero ...
        assert block.residual[0].weight.abs().sum() > 0  # ... the others are not
        x = torch.randn(2, block.residual[0].in_channels, 5, 5)
        assert torch.equal(block(x), x)  # so the residual path adds exactly nothing


def test_fixup_scales_the_residual_branch_by_the_depth():
    torch.manual_seed(0)
    g = R3GANGenerator(8, (3, 32, 32), width=64, blocks_per_stage=4, group_channels=16)
    depth = 4 * 4  # residual blocks in the network
    first = residual_blocks(g)[0].residual[0].weight  # 1x1 conv, fan-in 64
    expected = LEAKY_RELU_GAIN * depth ** (-1 / 4) / math.sqrt(64)
    assert first.std().item() == pytest.approx(expected, rel=0.05)


def test_every_non_zero_layer_of_a_block_has_the_depth_scaled_gain_and_the_basis_is_standard_normal():
    """The grouped 3x3 conv too (only the first 1x1 was checked), against the number itself, sqrt(2 / 1.04), not the
    module's constant (a test through the constant passed a mutated slope); the learned basis is N(0, 1)."""
    assert LEAKY_RELU_GAIN == pytest.approx(math.sqrt(2 / (1 + 0.2 ** 2))) == pytest.approx(1.386750)
    torch.manual_seed(0)
    g = R3GANGenerator(8, (3, 32, 32), width=64, blocks_per_stage=4, group_channels=16)
    middle = residual_blocks(g)[0].residual[2]  # grouped 3x3: fan-in 16 channels per group x 9
    expected = 1.386750 * 16 ** (-1 / 4) / math.sqrt(16 * 9)
    assert middle.groups > 1 and middle.weight.std().item() == pytest.approx(expected, rel=0.05)
    basis = g.stages[0][0].basis  # GenerativeBasis, G's first layer
    assert abs(basis.mean().item()) < 0.05 and basis.std().item() == pytest.approx(1.0, rel=0.05)


def test_resamplers_are_bilinear():
    x = torch.randn(2, 3, 8, 8)
    up = Resample(up=True)(x)
    reference = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert up.shape == (2, 3, 16, 16)
    assert torch.allclose(up[..., 1:-1, 1:-1], reference[..., 1:-1, 1:-1], atol=1e-6)  # zero padding at the border only
    ones = torch.ones(1, 2, 14, 14)
    down = Resample(up=False)(ones)
    assert down.shape == (1, 2, 7, 7) and torch.allclose(down[..., 1:-1, 1:-1], torch.ones(1, 2, 5, 5))


def test_r1_r2_double_backward_through_the_discriminator():
    torch.manual_seed(0)
    d = R3GANDiscriminator((1, 28, 28), **TINY)
    x = torch.randn(4, 1, 28, 28, requires_grad=True)
    (grad,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    grad.pow(2).sum().backward()
    grads = [p.grad for p in d.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_no_normalization_layers():
    nets = [R3GANGenerator(8, (3, 32, 32), **TINY), R3GANDiscriminator((3, 32, 32), **TINY)]
    norms = (torch.nn.BatchNorm2d, torch.nn.GroupNorm, torch.nn.LayerNorm)
    assert not any(isinstance(m, norms) or hasattr(m, "parametrizations") for net in nets for m in net.modules())


def test_option_errors_are_one_line_config_errors():
    with pytest.raises(ConfigError, match=r"takes no spectral_norm"):
        R3GANDiscriminator((3, 32, 32), spectral_norm=True, **TINY)
    with pytest.raises(ConfigError, match=r"conditioning=embedding"):
        R3GANGenerator(8, (3, 32, 32), num_classes=10, conditioning="batchnorm", **TINY)
    with pytest.raises(ConfigError, match=r"8 x 2 = 16 and group_channels=5"):
        R3GANGenerator(8, (3, 32, 32), width=8, group_channels=5)
    with pytest.raises(ConfigError, match=r"R3GANDiscriminator does not take norm='layer'"):
        R3GANDiscriminator((3, 32, 32), norm="layer", **TINY)
    # a negative depth built linear networks, silently; 0 builds them on purpose (as an MLP's hidden: [] does)
    with pytest.raises(ConfigError, match=r"^vector_depth must be >= 0 \(the hidden layers of the MLP on vector data; 0: a "
                                          r"linear network\), got -1$"):
        R3GANGenerator(8, (2,), width=8, vector_depth=-1)
    with pytest.raises(ConfigError, match=r"^vector_depth must be >= 0 .*, got -2$"):
        R3GANDiscriminator((2,), width=8, vector_depth=-2)
    linear = R3GANGenerator(8, (2,), width=8, vector_depth=0)
    assert [type(m) for m in linear.modules() if isinstance(m, (torch.nn.Linear, torch.nn.ReLU, torch.nn.LeakyReLU))] == [
        type(linear.stages[0][0])]  # one linear map (fp32 coordinates layer), no activation
    with pytest.raises(ConfigError, match=r"^vector_negative_slope must be >= 0 \(0 is ReLU\), got -0.2$"):  # was ReLU
        R3GANGenerator(8, (2,), width=8, vector_negative_slope=-0.2)


def test_vector_data_gets_unnormalized_mlps_with_optional_fourier_features():
    from gan.nets.layers import FourierFeatures

    generator = R3GANGenerator(8, (2,), width=32, vector_depth=2)
    discriminator = R3GANDiscriminator((2,), width=32, vector_depth=2, fourier_features=16, fourier_scales=[0.5, 5.0])
    x = generator(torch.randn(5, 8))
    assert x.shape == (5, 2) and discriminator(x).shape == (5,)
    linear = [m for m in generator.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [32, 32, 2]  # vector_depth hidden layers of width units
    assert not any(isinstance(m, (torch.nn.BatchNorm1d, torch.nn.LayerNorm)) for m in generator.modules())
    assert {type(m) for m in generator.modules()} >= {torch.nn.LeakyReLU}
    relu = R3GANGenerator(8, (2,), width=32, vector_negative_slope=0.0)
    assert any(isinstance(m, torch.nn.ReLU) for m in relu.modules())
    assert not any(isinstance(m, torch.nn.LeakyReLU) for m in relu.modules())
    fourier = [m for m in discriminator.modules() if isinstance(m, FourierFeatures)]
    assert len(fourier) == 1 and fourier[0].out_features == 2 + 2 * 16
    # the frequencies span the requested cycles per unit, log-spaced
    cycles = fourier[0].frequencies.norm(dim=0) / (2 * torch.pi)
    assert torch.allclose(cycles, torch.logspace(math.log10(0.5), math.log10(5.0), 16), rtol=1e-5)
    points = torch.randn(3, 2)
    # reference in float64: phases reach tens of radians, where float32 rounding alone is ~1e-5
    phase = points.double() @ fourier[0].frequencies.double()
    expected = torch.cat([points.double(), phase.sin(), phase.cos()], dim=1)
    assert torch.allclose(fourier[0](points).double(), expected, atol=1e-4)


@pytest.mark.parametrize("options,message", [
    # an empty list was "not enough values to unpack (expected 2, got 0)", a traceback (an audit)
    ({"fourier_scales": []}, r"^fourier_scales=\[\]: expected two numbers \[lowest, highest\] with 0 < lowest <= highest"),
    ({"fourier_scales": [1.0]}, r"^fourier_scales=\[1.0\]: expected two numbers"),
    ({"fourier_scales": [5.0, 0.5]}, r"^fourier_scales=\[5.0, 0.5\]: expected two numbers"),
    ({"fourier_scales": [0.0, 5.0]}, r"^fourier_scales=\[0.0, 5.0\]: expected two numbers"),
    # a negative count was taken as a count of features, now it is refused instead of building none
    ({"fourier_features": -3}, r"^fourier_features=-3: expected an integer >= 1 \(sinusoids of the input\), or 0 \(none\)$"),
])
def test_fourier_feature_options_out_of_range_are_refused_naming_the_option(options, message):
    with pytest.raises(ConfigError, match=message):
        R3GANDiscriminator((2,), width=8, **{"fourier_features": 4, **options})
    R3GANDiscriminator((2,), width=8, fourier_features=0, fourier_scales=[])  # no features: their scales are unused


def test_coordinates_stay_fp32_under_mixed_precision():
    """Under bf16 autocast the Fourier phases and a 2D generator's output layer are computed in fp32 (bf16
    spaces phases near 125 rad by 0.5 rad and coordinates near 4 by 0.03), the other layers in bf16; an
    image generator's output layer stays in autocast's dtype. The layers keep nn.Linear's state-dict keys."""
    from gan.nets import MLPGenerator
    from gan.nets.layers import FullPrecisionLinear

    torch.manual_seed(0)
    generator = R3GANGenerator(8, (2,), width=32, vector_depth=2)
    discriminator = R3GANDiscriminator((2,), width=32, vector_depth=2, fourier_features=16, fourier_scales=[0.5, 5.0])
    fourier = next(m for m in discriminator.modules() if type(m).__name__ == "FourierFeatures")
    output_layer = [m for m in generator.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert type(output_layer) is FullPrecisionLinear
    points, z = 4.0 + 0.1 * torch.randn(64, 2), torch.randn(64, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed_features, mixed_samples = fourier(points), generator(z)
        hidden = generator.stages[0][0](z)
    assert mixed_features.dtype == mixed_samples.dtype == torch.float32 and hidden.dtype == torch.bfloat16
    assert torch.equal(mixed_features, fourier(points))  # exactly the fp32 computation
    last_hidden = generator.stages[0][:-2](z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed_output = output_layer(last_hidden)
    torch.testing.assert_close(mixed_output, F.linear(last_hidden, output_layer.weight, output_layer.bias), rtol=0, atol=0)
    assert set(generator.state_dict()) == set(R3GANGenerator(8, (2,), width=32, vector_depth=2).state_dict())
    assert "stages.0.4.weight" in generator.state_dict()  # nn.Linear's keys, so older checkpoints load
    image = MLPGenerator(8, (1, 4, 4), hidden=[16])
    assert not any(isinstance(m, FullPrecisionLinear) for m in image.modules())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert image(z).dtype == torch.bfloat16


def test_fourier_features_give_torch_cats_first_and_second_order_gradients():
    """The layer concatenates with a backward that splits the gradient in one op (cheaper in R1/R2's backward
    of the backward): D's R1 gradients at its parameters are exactly those of the same D built on torch.cat,
    and gradcheck / gradgradcheck pass in float64."""
    from gan.nets.layers import FourierFeatures, _ConcatColumns

    torch.manual_seed(0)
    discriminator = R3GANDiscriminator((2,), width=32, vector_depth=2, fourier_features=16, fourier_scales=[0.5, 5.0])
    fourier = next(m for m in discriminator.modules() if isinstance(m, FourierFeatures))
    points = torch.randn(64, 2)

    def r1_parameter_gradients():
        x = points.clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(discriminator(x).sum(), x, create_graph=True)
        # biases after the last activation get no gradient from R1 (None)
        return torch.autograd.grad(gradient.pow(2).sum(), list(discriminator.parameters()), allow_unused=True)

    split = r1_parameter_gradients()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_ConcatColumns, "apply", lambda *parts: torch.cat(parts, dim=1))
        reference = r1_parameter_gradients()
    assert [a is None for a in split] == [b is None for b in reference]
    assert all(a is None or torch.equal(a, b) for a, b in zip(split, reference))
    first_weight = [name for name, _ in discriminator.named_parameters()].index("blocks.0.2.weight")  # after the features
    assert split[first_weight].abs().sum() > 0
    fourier = fourier.double()
    x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fourier, (x,)) and torch.autograd.gradgradcheck(fourier, (x,))
