"""The EMA generator's batch-norm statistics belong to its averaged weights, not to the raw generator's."""
from __future__ import annotations

import copy

import torch

from gan.ema import GeneratorEMA
from gan.nets import DCGANGenerator

torch.manual_seed(0)


def trained_a_little(generator: DCGANGenerator, steps: int = 3) -> None:
    """Move the weights and the running statistics as training would (train-mode forwards, weight changes)."""
    generator.train()
    for _ in range(steps):
        with torch.no_grad():
            generator(generator.noise(32), generator.random_labels(32))
            for p in generator.parameters():
                p.add_(0.3 * torch.randn_like(p))


def batch_statistics_output(generator: DCGANGenerator, z: torch.Tensor, labels=None) -> torch.Tensor:
    """The output with every batch norm normalising by the statistics of this very batch."""
    twin = copy.deepcopy(generator).train()
    with torch.no_grad():
        return twin(z, labels)


def test_averaged_generator_uses_statistics_of_its_own_weights():
    generator = DCGANGenerator(8, (1, 28, 28), width=4)
    ema = GeneratorEMA(generator, decay=0.5)
    ema.update(generator)
    for _ in range(3):
        trained_a_little(generator)
        ema.update(generator)
    averaged = ema.averaged()
    assert not ema.statistics_stale
    # one batch of the same fixed codes: the running statistics are exactly that batch's (unbiased variance)
    averaged.recompute_batch_norm_statistics(samples=2048, batch_size=2048, seed=0)
    z = averaged.noise(2048, torch.Generator().manual_seed(0))
    with torch.no_grad():
        shown = averaged.eval()(z)
    assert torch.allclose(shown, batch_statistics_output(averaged, z), atol=2e-3)
    # the raw generator's statistics do not fit the averaged weights: using them gives other samples
    stale = copy.deepcopy(averaged)
    for own, raw in zip(stale.modules(), generator.modules()):
        if isinstance(own, torch.nn.BatchNorm2d):
            own.running_mean.copy_(raw.running_mean)
            own.running_var.copy_(raw.running_var)
    with torch.no_grad():
        assert not torch.allclose(stale.eval()(z), shown, atol=0.05)


def test_recomputed_statistics_are_deterministic_and_leave_the_global_rng_alone():
    generator = DCGANGenerator(8, (1, 28, 28), width=4, num_classes=3, conditioning="batchnorm")
    trained_a_little(generator)
    twin = copy.deepcopy(generator)
    state = torch.get_rng_state()
    generator.recompute_batch_norm_statistics(samples=300, batch_size=128)
    assert torch.equal(state, torch.get_rng_state())
    twin.recompute_batch_norm_statistics(samples=300, batch_size=128)
    assert all(torch.equal(a, b) for a, b in zip(generator.buffers(), twin.buffers()))
    assert generator.training  # the mode it had
    momenta = {m.momentum for m in generator.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    assert momenta == {0.1}


def test_ema_update_averages_weights_but_not_batch_norm_statistics():
    generator = DCGANGenerator(8, (1, 28, 28), width=4)
    ema = GeneratorEMA(generator, decay=0.5)
    ema.update(generator)
    averaged = ema.averaged()
    statistics = {k: v.clone() for k, v in averaged.state_dict().items() if "running" in k}
    trained_a_little(generator)
    ema.update(generator)
    assert ema.statistics_stale
    # the update leaves the statistics; reading the average recomputes them
    assert all(torch.equal(v, ema.module.state_dict()[k]) for k, v in statistics.items())
    assert not all(torch.equal(v, ema.averaged().state_dict()[k]) for k, v in statistics.items())


def largest_singular_values(generator: torch.nn.Module) -> list[float]:
    """Of each spectrally normalised layer's weight as the layer uses it (eval mode: no power iteration)."""
    from torch.nn.utils import parametrize
    from torch.nn.utils.parametrizations import _SpectralNorm

    values = []
    for layer in generator.modules():
        if parametrize.is_parametrized(layer, "weight"):
            spectral = next(p for p in layer.parametrizations.weight if isinstance(p, _SpectralNorm))
            values.append(float(torch.linalg.matrix_norm(spectral._reshape_weight_to_matrix(layer.weight.detach()), ord=2)))
    return values


def test_an_averaged_generator_with_spectral_norm_divides_each_weight_by_its_own_largest_singular_value():
    """Spectral norm's power-iteration vectors were averaged like weights: an average of unit vectors is shorter
    than 1, and eval mode divides by u . W v as it stands, so without batch norm (whose recomputation iterates
    them) every layer of the EMA generator came out 8-13 % too large (an audit)."""
    torch.manual_seed(0)
    generator = DCGANGenerator(8, (1, 28, 28), width=8, norm="none", spectral_norm=True)
    ema = GeneratorEMA(generator, decay=0.99)
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-2)
    for _ in range(200):
        generator.train()
        loss = generator(generator.noise(16)).square().mean()  # train mode: one power iteration per forward
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ema.update(generator)
    averaged = ema.averaged().eval()
    assert len(largest_singular_values(averaged)) == 3
    assert all(abs(value - 1.0) < 1e-3 for value in largest_singular_values(averaged)), largest_singular_values(averaged)
    # the weights themselves are the average (only the normalisation's vectors are not averaged)
    assert not torch.equal(averaged.state_dict()["net.0.parametrizations.weight.original"],
                           generator.state_dict()["net.0.parametrizations.weight.original"])


def test_an_average_loaded_from_a_checkpoint_goes_on_averaging_instead_of_restarting():
    """A restored EMA has been updated before: its next update averages (decay 0.9) where a fresh one's first update
    copies the weights; a mutation that forgot the loaded count made a resume overwrite the average with G's weights."""
    generator = DCGANGenerator(8, (1, 28, 28), width=4)
    ema = GeneratorEMA(generator, decay=0.9)
    ema.update(generator)
    trained_a_little(generator)
    ema.update(generator)
    restored = GeneratorEMA(DCGANGenerator(8, (1, 28, 28), width=4), decay=0.9)
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == 2 and restored.has_average
    before = [p.clone() for p in restored.module.parameters()]
    trained_a_little(generator)
    restored.update(generator)
    for old, new, current in zip(before, restored.module.parameters(), generator.parameters()):
        assert torch.allclose(new, 0.9 * old + 0.1 * current.detach(), atol=1e-6)


def test_an_ema_decay_outside_zero_to_one_is_refused():
    """decay=1.0 freezes the average at its first copy (each update keeps all of the old weights); a negative decay
    overshoots the weights. Both are config errors (1.0 was accepted; a mutation audit); 0 and 0.999 are fine."""
    import pytest

    from gan.utils.errors import ConfigError

    generator = DCGANGenerator(8, (1, 28, 28), width=4)
    for decay in (1.0, -0.1):
        with pytest.raises(ConfigError, match=rf"^model\.ema_decay must be in \[0, 1\), got {decay}$"):
            GeneratorEMA(generator, decay=decay)
    for decay in (0.0, 0.999):
        assert GeneratorEMA(generator, decay=decay).decay == decay


def test_recomputed_statistics_do_not_depend_on_the_previous_buffers():
    """(a mutation audit) the statistics were not reset first, so the old running averages leaked in."""
    generator = DCGANGenerator(8, (1, 16, 16), width=4)
    twin = copy.deepcopy(generator)
    for m in generator.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.fill_(5.0)
            m.running_var.fill_(9.0)
            m.num_batches_tracked.fill_(1000)
    generator.recompute_batch_norm_statistics(samples=64, batch_size=32)
    twin.recompute_batch_norm_statistics(samples=64, batch_size=32)
    assert all(torch.equal(a, b) for a, b in zip(generator.buffers(), twin.buffers()))


def test_spectral_norms_are_recomputed_from_far_off_vectors():
    """(a mutation audit) one power iteration (max_iterations 1) left the estimate far from the largest singular value."""
    torch.manual_seed(0)
    generator = DCGANGenerator(8, (1, 16, 16), width=8, norm="none", spectral_norm=True)
    with torch.no_grad():
        for layer in generator.modules():
            if hasattr(layer, "parametrizations"):
                layer.parametrizations.weight.original.normal_()  # the stored vectors were iterated for other weights
    generator.recompute_spectral_norms()
    values = largest_singular_values(generator.eval())
    assert len(values) == 3 and all(abs(value - 1.0) < 1e-4 for value in values), values
