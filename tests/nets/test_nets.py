"""Network shapes, boundary checks, DCGAN initialisation and spectral normalization."""
import pytest
import torch

from gan.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from gan.nets.r3gan import R3GANDiscriminator
from gan.nets.resnet import ResNetDiscriminator


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64), (1, 16, 16)])
@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_dcgan_shapes_follow_the_data(shape, norm):
    g = DCGANGenerator(16, shape, width=4, norm=norm)
    d = DCGANDiscriminator(shape, width=4, norm=norm)
    x = g(torch.randn(5, 16))
    assert x.shape == (5, *shape)
    assert x.abs().max() <= 1.0  # tanh output
    assert d(x).shape == (5,)


def test_mlp_shapes_and_identity_output_for_points():
    g = MLPGenerator(8, (2,), hidden=[16], output="identity")
    d = MLPDiscriminator((2,), hidden=[16], maxout_pieces=5)
    with torch.no_grad():
        g.net[-2].bias.fill_(10.0)
    x = g(torch.randn(4, 8))
    assert x.shape == (4, 2) and x.abs().max() > 1.0  # unbounded, unlike tanh
    assert d(x).shape == (4,)


def test_discriminator_names_both_shapes_on_mismatch():
    d = DCGANDiscriminator((1, 28, 28), width=4)
    with pytest.raises(ValueError, match=r"\(1, 28, 28\).*\(3, 32, 32\)"):
        d(torch.randn(2, 3, 32, 32))


def test_generator_rejects_wrong_latent_size():
    with pytest.raises(ValueError, match=r"\(N, 16\).*\(2, 8\)"):
        DCGANGenerator(16, (1, 28, 28), width=4)(torch.randn(2, 8))


def test_dcgan_family_becomes_the_wgan_gp_toy_mlp_on_vectors():
    g = DCGANGenerator(16, (2,), width=64, norm="none", output="identity")
    d = DCGANDiscriminator((2,), width=64, norm="layer", spectral_norm=True)
    linears = [m for m in g.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 512), (512, 512), (512, 512), (512, 2)]
    assert not any(isinstance(m, torch.nn.Conv2d) for m in d.modules())
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in d.modules()) == 2  # none on the input layer
    assert all(hasattr(m, "parametrizations") for m in d.modules() if isinstance(m, torch.nn.Linear))
    assert d(g(torch.randn(5, 16))).shape == (5,)


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_dcgan_toy_discriminator_reads_fourier_features_of_its_input(spectral_norm):
    """``fourier_features`` puts sinusoids of the input before the first layer of the toy MLP (the remedy for a
    plain MLP's late resolution of sharp 2D modes): the first block is that layer, then the linear map of its
    [x, sin, cos] output, and spectral norm still normalizes every linear map (the frequencies are a buffer)."""
    from gan.nets.layers import FourierFeatures

    torch.manual_seed(0)
    d = DCGANDiscriminator((2,), width=8, norm="none", spectral_norm=spectral_norm, fourier_features=16,
                           fourier_scales=[1.0, 20.0])
    features, first_linear = d.blocks[0][0], d.blocks[0][1]
    assert isinstance(features, FourierFeatures) and features.out_features == 2 + 2 * 16
    assert first_linear.in_features == 34 and "blocks.0.0.frequencies" in d.state_dict()  # saved with checkpoints
    cycles = features.frequencies.norm(dim=0) / (2 * torch.pi)
    assert cycles.min() == pytest.approx(1.0, rel=1e-5) and cycles.max() == pytest.approx(20.0, rel=1e-5)
    assert all(hasattr(m, "parametrizations") == spectral_norm for m in d.modules() if isinstance(m, torch.nn.Linear))
    d.eval()  # spectral norm's power iteration does not advance, so the two passes see the same weights
    x = torch.randn(5, 2)
    phase = x @ features.frequencies
    h = torch.nn.functional.leaky_relu(first_linear(torch.cat([x, phase.sin(), phase.cos()], dim=1)), 0.2)
    for block in d.blocks[1:]:
        h = block(h)
    torch.testing.assert_close(d(x), d.head(h).flatten())
    plain = DCGANDiscriminator((2,), width=8, norm="none")
    assert not any(isinstance(m, FourierFeatures) for m in plain.modules()) and plain.blocks[0][0].in_features == 2


def test_dcgan_toy_discriminator_feeds_the_labels_of_concat_conditioning_through_the_fourier_features():
    d = DCGANDiscriminator((2,), width=8, norm="none", fourier_features=4, num_classes=3, conditioning="concat")
    assert d.blocks[0][0].out_features == (2 + 3) + 2 * 4
    assert d(torch.randn(6, 2), torch.arange(6) % 3).shape == (6,)


@pytest.mark.parametrize("build", [
    lambda: DCGANDiscriminator((1, 16, 16), width=4, fourier_features=8),
    lambda: R3GANDiscriminator((1, 16, 16), width=8, fourier_features=8),
])
def test_fourier_features_on_images_are_refused_not_ignored(build):
    from gan.utils.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^fourier_features=8: Fourier features of the input are for vector data "
                                          r"\(the 2D toys\), not images of shape \[1, 16, 16\]; expected 0$"):
        build()


@pytest.mark.parametrize("shape", [(3, 32, 48), (1, 2, 3, 4), (3, 6, 6)])
def test_dcgan_rejects_shapes_it_cannot_build(shape):
    with pytest.raises(ValueError, match=r"DCGANGenerator needs (square images|an image size).*got"):
        DCGANGenerator(16, shape)


@pytest.mark.parametrize("build", [
    lambda slope: DCGANDiscriminator((1, 16, 16), width=4, negative_slope=slope),
    lambda slope: DCGANDiscriminator((2,), width=4, negative_slope=slope),
    lambda slope: MLPGenerator(4, (2,), hidden=(8,), negative_slope=slope),  # took a negative slope as ReLU
    lambda slope: MLPDiscriminator((2,), hidden=(8,), maxout_pieces=1, negative_slope=slope),
    lambda slope: ResNetDiscriminator((3, 32, 32), width=4, negative_slope=slope),
], ids=["dcgan", "dcgan-vectors", "mlp-generator", "mlp-discriminator", "resnet"])
def test_a_negative_leaky_relu_slope_is_refused_and_zero_is_relu(build):
    with pytest.raises(ValueError, match=r"^negative_slope must be >= 0 \(0 is ReLU\), got -0.2$"):
        build(-0.2)
    x = torch.linspace(-1, 1, 11)
    for slope in (0.0, 0.2):
        activations = [m for m in build(slope).modules() if isinstance(m, (torch.nn.LeakyReLU, torch.nn.ReLU))]
        assert activations and all(torch.equal(a(x.clone()), torch.where(x > 0, x, slope * x)) for a in activations)


def test_unknown_normalization_is_named():
    with pytest.raises(ValueError, match=r"unknown normalization 'group'"):
        DCGANDiscriminator((2,), norm="group")


def test_dcgan_init_is_normal_002():
    torch.manual_seed(0)
    g = DCGANGenerator(100, (3, 64, 64), width=64)
    weights = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    assert weights.mean().abs() < 1e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.02)


def test_spectral_norm_keeps_top_singular_value_near_one():
    torch.manual_seed(0)
    d = DCGANDiscriminator((3, 32, 32), width=8, norm="none", spectral_norm=True)
    with torch.no_grad():
        for _ in range(100):  # each forward in train mode runs one power iteration
            d(torch.randn(4, 3, 32, 32))
    wrapped = [m for m in d.modules() if hasattr(m, "parametrizations")]
    assert len(wrapped) == 4
    for module in wrapped:
        sigma = torch.linalg.matrix_norm(module.weight.flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=0.02)
        raw = torch.linalg.matrix_norm(module.parametrizations.weight.original.flatten(1), ord=2)
        assert raw.item() != pytest.approx(1.0, abs=0.05)  # the constraint is the wrapper's doing


def test_sample_returns_data_range_in_eval_mode():
    g = DCGANGenerator(16, (1, 28, 28), width=4)
    g.train()
    samples = g.sample(6)
    assert samples.shape == (6, 1, 28, 28) and samples.min() >= -1 and samples.max() <= 1
    assert g.training  # restored


def test_eval_mode_inside_eval_mode_switches_nothing_and_restores_the_outer_state():
    from gan.nets.base import eval_mode

    g = DCGANGenerator(16, (1, 28, 28), width=4)
    switches = []
    for module in g.modules():
        module.train = (lambda original: lambda mode=True: switches.append(mode) or original(mode))(module.train)
    g.train()
    with eval_mode(g):
        assert not any(m.training for m in g.modules())
        outer = len(switches)
        with eval_mode(g):  # a batch's sample() inside a metric's evaluation
            assert not any(m.training for m in g.modules())
        assert len(switches) == outer  # nothing switched, nothing switched back
        assert not any(m.training for m in g.modules())
    assert all(m.training for m in g.modules())
    # a block that switches the network to training leaves it in eval mode, as the switching block always did
    with eval_mode(g):
        with eval_mode(g):
            g.net[0].train()
        assert not any(m.training for m in g.modules())
    # a submodule left training under an eval-mode parent is still switched (and the block ends as before)
    g.eval()
    g.net[0].train()
    with eval_mode(g):
        assert not any(m.training for m in g.modules())


# ------------------------------------------------------------- options each network must honour (mutation audit)
def test_a_label_equal_to_the_class_count_is_refused():
    from gan.nets.base import check_labels
    from gan.utils.errors import ConfigError

    assert check_labels("G", 3, torch.tensor([0, 2]), 2).tolist() == [0, 2]
    with pytest.raises(ConfigError, match=r"labels in \[0, 3\), got values in \[0, 3\]"):
        check_labels("G", 3, torch.tensor([0, 3]), 2)


def test_conditional_generators_draw_every_class_and_embed_at_the_size_asked():
    g = MLPGenerator(8, (2,), hidden=(16,), num_classes=10, embedding_dim=4)
    assert g.label_embedding.embedding_dim == 4
    assert MLPGenerator(8, (2,), hidden=(16,), num_classes=10).label_embedding.embedding_dim == 10  # the default
    drawn = g.random_labels(1000, torch.Generator().manual_seed(0))
    assert sorted(drawn.unique().tolist()) == list(range(10))


def test_dcgan_generator_narrows_towards_the_image_and_ends_in_its_output_activation():
    g = DCGANGenerator(8, (3, 32, 32), width=4, output="sigmoid")  # 4x4 -> 32x32: widths 16, 8, 4, then 3 channels
    deconvs = [m for m in g.net if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.out_channels for m in deconvs] == [16, 8, 4, 3]
    assert isinstance(g.net[-1], torch.nn.Sigmoid)
    assert isinstance(DCGANGenerator(8, (3, 32, 32), width=4).net[-1], torch.nn.Tanh)


def test_dcgan_discriminator_leaves_its_input_layer_unnormalized():
    # Radford et al. 2015, section 3: no batch norm on D's input layer; the later blocks have it
    d = DCGANDiscriminator((3, 32, 32), width=4, norm="batch")
    has_norm = [any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in block.modules()) for block in d.blocks]
    assert has_norm[0] is False and all(has_norm[1:])


def test_mlp_networks_keep_their_dropout_and_output_activation():
    d = MLPDiscriminator((1, 28, 28), hidden=(16, 16), dropout=0.5, input_dropout=0.2)
    dropouts = [m.p for m in d.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [0.2, 0.5, 0.5]  # on the input, then after each hidden layer (Goodfellow et al. 2014)
    g = MLPGenerator(8, (1, 28, 28), hidden=(16,))
    assert isinstance(g.net[-1], torch.nn.Tanh)
    torch.manual_seed(0)
    with torch.no_grad():
        g.net[-2].bias.fill_(50.0)  # far outside [-1, 1] before the activation
    assert g.sample(4).abs().max() <= 1.0


@pytest.mark.parametrize("vector", [False, True])
def test_conditional_batch_norm_is_batch_norm_then_the_labels_scale_and_shift(vector):
    """(a mutation audit) the scale's ones-init dropped, and the shift read from the scale embedding."""
    from gan.nets.layers import ConditionalBatchNorm

    torch.manual_seed(0)
    cbn = ConditionalBatchNorm(4, 3, vector=vector)
    assert torch.equal(cbn.scale.weight, torch.ones(3, 4)) and torch.equal(cbn.shift.weight, torch.zeros(3, 4))
    with torch.no_grad():
        cbn.scale.weight.normal_()
        cbn.shift.weight.normal_()
    x = torch.randn(6, 4) if vector else torch.randn(6, 4, 3, 3)
    labels = torch.tensor([0, 1, 2, 2, 1, 0])
    normed = torch.nn.functional.batch_norm(x, None, None, training=True, eps=cbn.norm.eps)
    shape = (6, 4) if vector else (6, 4, 1, 1)
    expected = normed * cbn.scale.weight[labels].view(shape) + cbn.shift.weight[labels].view(shape)
    torch.testing.assert_close(cbn(x, labels), expected)


def test_maxout_is_the_max_over_its_pieces():
    """(a mutation audit) the max over the pieces replaced by their mean."""
    from gan.nets.mlp import Maxout

    torch.manual_seed(0)
    layer = Maxout(3, 4, 5)
    x = torch.randn(6, 3)
    pieces = layer.linear(x).view(6, 4, 5)
    torch.testing.assert_close(layer(x), pieces.max(dim=2).values)


@pytest.mark.parametrize("shape", [(1, 16, 16), (2,)])
@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_dcgan_generator_hidden_layers_have_biases_only_without_norm(shape, norm):
    """(a mutation audit) the bias rule inverted, and the output layer's bias following it."""
    g = DCGANGenerator(8, shape, width=4, norm=norm)
    layers = [m for m in g.modules() if isinstance(m, (torch.nn.ConvTranspose2d, torch.nn.Linear))]
    assert len(layers) >= 3
    assert all((m.bias is not None) == (norm == "none") for m in layers[:-1])
    assert layers[-1].bias is not None


@pytest.mark.parametrize("norm", ["none", "layer"])
def test_dcgan_init_zeroes_biases_and_draws_norm_scales_around_one(norm):
    """(a mutation audit) the zero-init of biases dropped, and GroupNorm left out of the N(1, 0.02) scales."""
    torch.manual_seed(0)
    for net in (DCGANGenerator(8, (1, 32, 32), width=32, norm=norm), DCGANDiscriminator((1, 32, 32), width=32, norm=norm)):
        biases = [m.bias for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))
                  and m.bias is not None]
        assert biases and all(torch.equal(b, torch.zeros_like(b)) for b in biases)
        if norm == "layer":
            groups = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
            assert groups
            weight = torch.cat([m.weight.detach() for m in groups])
            assert abs(weight.mean().item() - 1.0) < 0.01 and 0.01 < weight.std().item() < 0.03
            assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in groups)


def test_projection_embedding_is_xavier_uniform():
    """(a mutation audit) the projection embedding kept nn.Embedding's N(0, 1) init."""
    import math

    torch.manual_seed(0)
    d = DCGANDiscriminator((1, 16, 16), width=4, num_classes=10, conditioning="projection")
    weight = d.projection.weight
    bound = math.sqrt(6 / (weight.size(0) + weight.size(1)))
    assert weight.abs().max() <= bound and weight.abs().max() > 0.9 * bound


def test_a_hook_based_spectral_norm_makes_samples_dependent():
    """(a mutation audit) the forward-pre-hook check (torch.nn.utils.spectral_norm) disabled."""
    d = DCGANDiscriminator((1, 16, 16), width=4, norm="none")
    assert d.samples_independent
    torch.nn.utils.spectral_norm(d.head)
    assert not d.samples_independent
