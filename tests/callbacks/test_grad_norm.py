"""GradNorm: the logged norms equal norms computed directly from ``.grad`` of the step they describe."""
import math

import lightning.pytorch as pl
import pytest
import torch

from gan.callbacks import GradNorm
from gan.callbacks.grad_norm import combined_norm, layer_groups
from gan.utils.instantiate import build, build_module
from tests.conftest import tiny_overrides


def direct_norm(params) -> float:
    return float(torch.cat([p.grad.flatten() for p in params if p.grad is not None]).norm())


class GradProbe(pl.Callback):
    """After each batch, the norms straight from ``.grad``. Both networks still hold the gradients of their
    latest update there: each phase clears only its own optimizer's gradients, and the other network is
    frozen (toggle_optimizer) during it."""

    def __init__(self, grad_norm: GradNorm):
        self.grad_norm, self.checked, self.seen = grad_norm, [], 0

    def on_gan_iteration_end(self, trainer, pl_module):  # every iteration, however many a training batch holds
        step, generator_stepped = pl_module.generator_steps, pl_module.generator_steps != self.seen
        self.seen = step
        if not generator_stepped or step % self.grad_norm.every:
            return
        first_layer = [p for name, p in pl_module.generator.named_parameters() if name.startswith("net.0.")]
        self.checked.append({
            "step": step, "logged": dict(self.grad_norm.last_logged), "g_first_layer": direct_norm(first_layer),
            "g": direct_norm(pl_module.generator.parameters()), "d": direct_norm(pl_module.discriminator.parameters()),
        })


def fit_with_probe(cfg, every, **trainer_options):
    datamodule = build(cfg.data)
    module = build_module(cfg)
    grad_norm = GradNorm(every_n_generator_steps=every)
    probe = GradProbe(grad_norm)  # runs after GradNorm: callbacks run in list order
    trainer = pl.Trainer(max_steps=cfg.trainer.max_steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[grad_norm, probe], **trainer_options)
    trainer.fit(module, datamodule=datamodule)
    return probe.checked


def assert_logged_norms_match(checked):
    for check in checked:
        logged = check["logged"]
        assert logged["grad/g/norm"] == pytest.approx(check["g"], rel=1e-5)
        assert logged["grad/d/norm"] == pytest.approx(check["d"], rel=1e-5)  # includes the gradient penalty's share
        assert logged["grad/g_to_d_ratio"] == pytest.approx(check["g"] / check["d"], rel=1e-5)
        assert logged["grad/g/layer/net.0"] == pytest.approx(check["g_first_layer"], rel=1e-5)
        for net in ("g", "d"):  # the layer groups partition the network: their norms compose to the total
            layers = [v for k, v in logged.items() if k.startswith(f"grad/{net}/layer/")]
            assert math.sqrt(sum(v * v for v in layers)) == pytest.approx(logged[f"grad/{net}/norm"], rel=1e-5)


@pytest.mark.parametrize("model,data,extra", [
    ("gan", "toy2d_ring", []), pytest.param("wgan_gp", "digits", [], marks=pytest.mark.slow),
    # two G steps per iteration: no D step ever saw an odd generator step count, so grad/d/norm was never logged
    ("gan", "toy2d_ring", ["model.n_generator=2"])], ids=["gan", "wgan_gp", "n_generator_2"])
def test_logged_norms_equal_norms_of_the_gradients(make_cfg, model, data, extra):
    checked = fit_with_probe(make_cfg(tiny_overrides(model, data, steps=4) + extra), every=2, accelerator="cpu")
    assert [c["step"] for c in checked] == [2, 4]  # every 2 generator steps, whatever n_critic is
    assert_logged_norms_match(checked)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 loss scaling needs a CUDA GPU")
def test_norms_are_read_after_amp_unscaling(make_cfg):
    # GradScaler unscales .grad in place before the hook: norms read before it would be ~65536x larger
    checked = fit_with_probe(make_cfg(tiny_overrides("gan", "toy2d_ring", steps=4)), every=1, accelerator="gpu",
                             devices=1, precision="16-mixed")
    assert [c["step"] for c in checked] == [1, 2, 3, 4]
    assert_logged_norms_match(checked)


def test_layer_groups_cover_every_parameter_once_and_merge_spectral_norm(make_cfg):
    cfg = make_cfg(tiny_overrides("sngan", "digits"))
    discriminator = build_module(cfg).discriminator
    groups = layer_groups(discriminator, depth=None)
    grouped = [id(p) for params in groups.values() for p in params]
    assert sorted(grouped) == sorted(id(p) for p in discriminator.parameters())
    assert not any("parametrizations" in name for name in groups)
    assert set(layer_groups(discriminator, depth=1)) <= {name.split(".")[0] for name in groups}


def test_layer_groups_name_a_spectral_norm_layer_by_its_own_path_and_leave_frozen_layers_out():
    from torch import nn
    from torch.nn.utils.parametrizations import spectral_norm

    frozen = nn.Linear(2, 2)
    frozen.requires_grad_(False)
    network = nn.Sequential(spectral_norm(nn.Linear(2, 2)), nn.Linear(2, 2), frozen)
    groups = layer_groups(network, depth=None)
    assert sorted(groups) == ["0", "1"]  # not "root" for the parametrized layer; the frozen layer has no gradients
    assert {id(p) for p in groups["0"]} == {id(network[0].bias), id(network[0].parametrizations.weight.original)}


@pytest.mark.parametrize("g, d, ratio", [(2.0, 4.0, 0.5), (2.0, 0.0, None), (2.0, None, None), (float("nan"), 1.0, None),
                                         (None, 1.0, None)])
def test_the_g_to_d_ratio_needs_both_norms_and_a_d_gradient(g, d, ratio):
    from gan.callbacks.grad_norm import g_to_d_ratio

    assert g_to_d_ratio(g, d) == ratio


@pytest.mark.parametrize("option,value,match", [("every_n_generator_steps", 0, "every_n_generator_steps must be a positive integer, got 0"),
                                                ("norm_type", -1, "norm_type must be positive")])
def test_bad_options_fail_with_one_line(option, value, match):
    with pytest.raises(ValueError, match=match):
        GradNorm(**{option: value})


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.5, math.inf])
def test_parts_norms_compose_into_the_norm_of_the_concatenation(norm_type):
    """What the layer and network norms are computed with: one norm per parameter, composed on the host."""
    parts = [torch.randn(5, generator=torch.Generator().manual_seed(k)) * 10.0 ** k for k in range(-3, 4)]
    norms = [float(torch.linalg.vector_norm(part.double(), norm_type)) for part in parts]
    expected = float(torch.linalg.vector_norm(torch.cat(parts).double(), norm_type))
    assert combined_norm(norms, norm_type) == pytest.approx(expected, rel=1e-12)


def test_composed_norm_of_no_parts_nan_inf_and_huge_parts():
    assert combined_norm([], 2.0) == 0.0
    assert math.isnan(combined_norm([1.0, math.nan, math.inf], 2.0))  # NaN wins, as in torch's norms
    assert combined_norm([1.0, math.inf], 2.0) == math.inf
    assert combined_norm([1e300, 1e300], 2.0) == pytest.approx(math.sqrt(2.0) * 1e300)  # the squares would overflow


@pytest.mark.parametrize("g_norm, d_norm, logged", [
    (3.0, math.inf, {"grad/g/norm": 3.0, "grad/g/layer/net.0": 3.0}),  # D's step skipped: only G's norms
    (math.nan, 4.0, {"grad/d/norm": 4.0, "grad/d/layer/net.0": 4.0}),  # G's step skipped: only D's
    (3.0, 4.0, {"grad/g/norm": 3.0, "grad/g/layer/net.0": 3.0, "grad/d/norm": 4.0, "grad/d/layer/net.0": 4.0,
                "grad/g_to_d_ratio": 0.75}),
    (math.inf, math.inf, None),  # both skipped: nothing logged
])
def test_a_step_the_amp_scaler_skipped_logs_none_of_its_network_s_norms(monkeypatch, g_norm, d_norm, logged):
    """Under 16-mixed a GradScaler skips a step whose gradients overflowed: they were never applied, so none of that
    network's norms (its total and its layers) are logged; the other network's are (a mutation audit: the skipped
    network's inf/NaN norms were logged)."""
    from types import SimpleNamespace

    from gan.callbacks import grad_norm as grad_norm_module

    written = []
    monkeypatch.setattr(grad_norm_module, "log_scalars", lambda trainer, values, step: written.append((dict(values), step)))
    callback = GradNorm(every_n_generator_steps=1)
    callback._groups = {"g": {"net.0": []}, "d": {"net.0": []}}  # what setup reads from the networks
    callback._skipped_steps_possible = True  # what on_train_start reads from a trainer with a GradScaler
    callback._pending = {"g": (["net.0"], torch.tensor([g_norm])), "d": (["net.0"], torch.tensor([d_norm]))}
    callback.on_gan_iteration_end(None, SimpleNamespace(generator_steps=5))
    assert callback._pending == {}
    if logged is None:
        assert written == [] and callback.last_logged == {}
    else:
        assert written == [(logged, 5)] and callback.last_logged == pytest.approx(logged)
