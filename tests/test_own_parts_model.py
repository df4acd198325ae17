"""Pieces of one's own (a loss, a penalty, networks) that break the framework's interface are refused in one line naming
the class, its config key and what is expected: at construction where the class shows it, else on the first training
step, before anything is updated (an audit: tracebacks at the first step). The checks change no number of a correct
run (they run once, read shapes and types, draw no random number)."""
from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan.losses import AdversarialLoss, NonSaturatingLoss, Penalty, R1Penalty
from gan.module import GANModule
from gan.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from gan.nets.base import Discriminator, DiscriminatorOutput, Generator
from gan.utils.config import PROJECT_ROOT
from gan.utils.errors import ConfigError
from tests.conftest import tiny_overrides

HERE = __name__  # the _target_ prefix of the classes below (tests.test_own_parts_model)
POINTS, IMAGES = (2,), (1, 16, 16)


# ------------------------------------------------------------------------------------- classes a researcher writes
class TensorLoss(AdversarialLoss):
    """Returns the scalar itself instead of a dict of terms."""

    def discriminator_loss(self, real_logits, fake_logits, real_targets=None, fake_targets=None):
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def _g(self, fake_logits):
        return F.softplus(-fake_logits).mean()


class TensorGeneratorLoss(NonSaturatingLoss):
    def generator_loss(self, fake_logits, real_logits=None):
        return F.softplus(-fake_logits).mean()


class WrongNames(AdversarialLoss):
    def d_loss(self, real_logits, fake_logits):
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits):
        return F.softplus(-fake_logits).mean()


class NoLossKey(NonSaturatingLoss):
    def discriminator_loss(self, real_logits, fake_logits, real_targets=None, fake_targets=None):
        return {"d": F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()}


class PerSample(AdversarialLoss):
    def _d(self, real_logits, fake_logits):
        return F.softplus(-real_logits) + F.softplus(fake_logits)

    def _g(self, fake_logits):
        return F.softplus(-fake_logits).mean()


class DetachedLoss(NonSaturatingLoss):
    def _d(self, real_logits, fake_logits):
        return super()._d(real_logits, fake_logits).detach()


class TargetsNotImplemented(AdversarialLoss):
    has_targets = True

    def _d(self, real_logits, fake_logits):
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def _g(self, fake_logits):
        return F.softplus(-fake_logits).mean()


class PlainLoss:
    """Duck-typed: the right methods, no AdversarialLoss."""

    def discriminator_loss(self, real_logits, fake_logits, real_targets=None, fake_targets=None):
        return {"loss": (F.softplus(-real_logits) + F.softplus(fake_logits)).mean()}

    def generator_loss(self, fake_logits, real_logits=None):
        return {"loss": F.softplus(-fake_logits).mean()}


class TensorPenalty(Penalty):
    interval = 1

    def __init__(self, interval: int = 1):
        super().__init__()
        self.interval = interval

    def forward(self, critic, real, fake, real_logits=None, fake_logits=None):
        return real_logits.pow(2).mean()


class NoLossPenalty(Penalty):
    def forward(self, critic, real, fake, real_logits=None, fake_logits=None):
        return {"mine": real_logits.pow(2).mean()}


class PenaltyMethod(Penalty):
    def penalty(self, critic, real, fake, real_logits=None, fake_logits=None):
        return {"loss": real_logits.pow(2).mean()}


class NoSuperInit(Penalty):
    def __init__(self, weight: float = 1.0):
        self.weight = weight

    def forward(self, critic, real, fake, real_logits=None, fake_logits=None):
        return {"loss": self.weight * real_logits.pow(2).mean()}


class DetachedPenalty(Penalty):
    def __init__(self, value: float | None = None, as_number: bool = False):
        super().__init__()
        self.value = value  # None: the real penalty, detached; a number: that constant
        self.as_number = as_number  # the constant as a Python float (a warm-up's 0.0), not a tensor

    def forward(self, critic, real, fake, real_logits=None, fake_logits=None):
        if self.value is not None:
            return {"loss": self.value if self.as_number else torch.tensor(self.value)}
        return {"loss": real_logits.pow(2).mean().detach()}


class FlatGenerator(Generator):
    """Returns (N, prod(sample_shape)): flattened images, or one number per 2-D point when built with out=1."""

    def __init__(self, latent_dim, sample_shape, out: int | None = None):
        super().__init__(latent_dim, sample_shape)
        self.net = nn.Linear(self.input_dim, out or math.prod(self.sample_shape))

    def generate(self, z, labels):
        return torch.tanh(self.net(z))


class CastingGenerator(FlatGenerator):
    """2-D points as ``dtype`` or on ``device``: a .double() left in, an integer tensor, a tensor created without
    device= (the meta device stands in for a GPU here)."""

    def __init__(self, latent_dim, sample_shape, dtype=None, device=None):
        super().__init__(latent_dim, sample_shape)
        self.dtype, self.device = dtype, device

    def generate(self, z, labels):
        return super().generate(z, labels).to(dtype=self.dtype, device=self.device)


class NoBlocksD(Discriminator):
    def __init__(self, sample_shape):
        super().__init__(sample_shape)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(self.sample_shape), 16), nn.LeakyReLU(0.2),
                                 nn.Linear(16, 1))

    def forward(self, x, labels=None):
        return self.net(x).squeeze(1)


class TwoHeadD(Discriminator):
    def __init__(self, sample_shape):
        super().__init__(sample_shape)
        features = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(self.sample_shape), 16), nn.LeakyReLU(0.2))
        self.blocks = nn.ModuleList([features])
        self.head = nn.Linear(16, 2)


class OwnEvaluateD(NoBlocksD):
    """Its own evaluate, no blocks; ``outputs`` logits per sample."""

    def __init__(self, sample_shape, outputs: int = 1):
        super().__init__(sample_shape)
        self.net[-1] = nn.Linear(16, outputs)

    def evaluate(self, x, labels=None):
        logits = self.net(x)
        return DiscriminatorOutput(logits.squeeze(1) if logits.size(1) == 1 else logits, None, [])


# ------------------------------------------------------------------------------------------------------- helpers
def adam():
    return partial(torch.optim.Adam, lr=1e-2)


def make_module(shape=POINTS, generator=None, discriminator=None, **kwargs):
    torch.manual_seed(0)
    if generator is None:
        generator = MLPGenerator(4, shape, hidden=[8]) if shape == POINTS else DCGANGenerator(8, shape, width=4)
    if discriminator is None:
        discriminator = MLPDiscriminator(shape, hidden=[8], maxout_pieces=2, dropout=0.0, input_dropout=0.0) \
            if shape == POINTS else DCGANDiscriminator(shape, width=4)
    defaults = dict(generator=generator, discriminator=discriminator, loss=NonSaturatingLoss(),
                    optimizer={"generator": adam(), "discriminator": adam()}, num_fixed_samples=8)
    return GANModule(**{**defaults, **kwargs})


def optimizers(module):
    """Plain optimizers for the two networks, stepped by the module's phases; no Trainer (the backward pass is then the
    plain ``loss.backward()``, as a one-device 32-bit fit runs it)."""
    module._plain_backward = True
    opt_g, opt_d = module.configure_optimizers()
    return opt_g, opt_d


def params(net):
    return [p.detach().clone() for p in net.parameters()]


def unchanged(before, net):
    return all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def refused_at_first_d_step(module, match, shape=POINTS):
    """The first D step raises the one-line error before D is updated."""
    _, opt_d = optimizers(module)
    before = params(module.discriminator)
    with pytest.raises(ConfigError, match=match):
        module.discriminator_step(torch.randn(8, *shape), opt_d)
    assert unchanged(before, module.discriminator)


# --------------------------------------------------------------------------------------------------------- losses
def test_a_loss_returning_a_tensor_instead_of_terms_is_refused_at_the_first_step():
    refused_at_first_d_step(make_module(loss=TensorLoss()),
                            rf"^loss._target_={HERE}.TensorLoss: discriminator_loss\(real_logits, fake_logits, ...\) "
                            r"returned a tensor of shape \(\); expected a dict of named terms with the optimized one, "
                            r"a scalar tensor, under 'loss' \(e.g. \{'loss': loss\}\)$")


def test_a_generator_loss_returning_a_tensor_is_refused_at_the_first_generator_step():
    module = make_module(loss=TensorGeneratorLoss())
    opt_g, _ = optimizers(module)
    before = params(module.generator)
    with pytest.raises(ConfigError, match=rf"^loss._target_={HERE}.TensorGeneratorLoss: generator_loss\(fake_logits, "
                                          r"...\) returned a tensor of shape \(\); expected a dict"):
        module.generator_step(torch.randn(8, *POINTS), opt_g)
    assert unchanged(before, module.generator)


def test_a_loss_with_misnamed_methods_is_refused_when_the_module_is_built():
    with pytest.raises(ConfigError, match=rf"^loss._target_={HERE}.WrongNames defines neither _d nor discriminator_loss "
                                          r"and neither _g nor generator_loss \(it defines d_loss, g_loss\): a loss of "
                                          r"one's own subclasses gan.losses.AdversarialLoss and defines "
                                          r"_d\(real_logits, fake_logits\) and _g\(fake_logits\)"):
        make_module(loss=WrongNames())


def test_a_loss_without_a_loss_term_with_a_per_sample_or_a_detached_loss_is_refused_at_the_first_step():
    refused_at_first_d_step(make_module(loss=NoLossKey()),
                            rf"^loss._target_={HERE}.NoLossKey: discriminator_loss\(.*\) returned a dict without "
                            r"'loss' \(keys \['d'\]\)")
    refused_at_first_d_step(make_module(loss=PerSample()),
                            rf"^loss._target_={HERE}.PerSample: _d\(real_logits, fake_logits\) returned 'loss' of "
                            r"shape \(8,\); expected a scalar \(reduce the per-sample values, e.g. with .mean\(\)\)$")
    refused_at_first_d_step(make_module(loss=DetachedLoss(), penalties={"r1": R1Penalty()}),  # R1 alone would train D
                            rf"^loss._target_={HERE}.DetachedLoss: _d\(real_logits, fake_logits\) returned 'loss' without "
                            r"a gradient \(detached, read with .item\(\) or computed under no_grad\)")


def test_label_smoothing_with_a_loss_that_has_targets_but_no_targets_objective_is_refused():
    make_module(loss=TargetsNotImplemented())  # no label trick: nothing calls _d_targets
    with pytest.raises(ConfigError, match=rf"^model.real_label=0.9 gives the discriminator loss per-sample targets, but "
                                          rf"loss._target_={HERE}.TargetsNotImplemented \(has_targets = True\) defines no "
                                          r"_d_targets\(real_logits, fake_logits, real_targets, fake_targets\)"):
        make_module(loss=TargetsNotImplemented(), real_label=0.9)
    with pytest.raises(ConfigError, match=r"^model.label_flip_prob=0.1 gives"):
        make_module(loss=TargetsNotImplemented(), label_flip_prob=0.1)


def test_a_duck_typed_loss_is_told_to_subclass_adversarial_loss_under_its_own_key(make_cfg):
    from gan.utils.instantiate import build_module

    cfg = make_cfg(tiny_overrides("gan", "toy2d_ring", steps=1) + [f"loss._target_={HERE}.PlainLoss"])
    with pytest.raises(ConfigError, match=rf"^loss._target_={HERE}.PlainLoss is no gan.losses.AdversarialLoss: a loss "
                                          r"of one's own must subclass it \(and define _d and _g\), or choose one with "
                                          r"loss=<name>, e.g. loss=hinge; got PlainLoss"):
        build_module(cfg)


# ------------------------------------------------------------------------------------------------------ penalties
def test_a_penalty_returning_a_tensor_or_no_loss_term_is_refused_at_its_first_step():
    refused_at_first_d_step(make_module(penalties={"mine": TensorPenalty()}),
                            rf"^model.penalties.mine._target_={HERE}.TensorPenalty: forward\(critic, real, fake, "
                            r"real_logits, fake_logits\) returned a tensor of shape \(\); expected a dict of named terms")
    refused_at_first_d_step(make_module(penalties={"mine": NoLossPenalty()}),
                            rf"^model.penalties.mine._target_={HERE}.NoLossPenalty: forward\(.*\) returned a dict "
                            r"without 'loss' \(keys \['mine'\]\)")


def test_a_lazy_penalty_is_checked_at_the_first_step_it_is_applied():
    """A resumed run whose first D step skips the penalty checks it at the next one that applies it."""
    module = make_module(penalties={"mine": TensorPenalty(interval=2)})
    module.discriminator_steps = 1  # resumed mid-interval: the first step of this process leaves the penalty out
    _, opt_d = optimizers(module)
    module.discriminator_step(torch.randn(8, *POINTS), opt_d)
    with pytest.raises(ConfigError, match=r"^model.penalties.mine._target_=.*TensorPenalty: forward.* returned a tensor"):
        module.discriminator_step(torch.randn(8, *POINTS), opt_d)


def test_a_penalty_defining_another_method_than_forward_is_refused_when_the_module_is_built():
    with pytest.raises(ConfigError, match=rf"^model.penalties.mine._target_={HERE}.PenaltyMethod defines no forward "
                                          r"\(it defines penalty\): a penalty of one's own subclasses gan.losses.Penalty "
                                          r"and defines forward\(critic, real, fake, real_logits=None, fake_logits=None\)"):
        make_module(penalties={"mine": PenaltyMethod()})


def test_a_penalty_that_skips_super_init_is_refused_in_one_line_from_the_config(make_cfg):
    from gan.utils.instantiate import build_module

    cfg = make_cfg(tiny_overrides("gan", "toy2d_ring", steps=1) + [f"+model.penalties.mine._target_={HERE}.NoSuperInit"])
    with pytest.raises(ConfigError, match=rf"^model.penalties.mine._target_={HERE}.NoSuperInit: its __init__ does not "
                                          r"call super\(\).__init__\(\); a penalty is a torch nn.Module"):
        build_module(cfg)


class ZeroFirstPenalty(Penalty):
    """0 (detached) for ``zero_steps`` applications, then ``later``: the real penalty, or it detached, or a number."""

    def __init__(self, zero_steps: int, later: str, as_number: bool = False):
        super().__init__()
        self.zero_steps, self.later, self.as_number, self.calls = zero_steps, later, as_number, 0

    def forward(self, critic, real, fake, real_logits=None, fake_logits=None):
        self.calls += 1
        if self.calls <= self.zero_steps:
            return {"loss": 0.0 if self.as_number else torch.zeros(())}
        value = real_logits.pow(2).mean() + 0.5
        if self.later == "number":
            return {"loss": float(value.detach())}
        return {"loss": value.detach() if self.later == "detached" else value}


@pytest.mark.parametrize("as_number", [False, True])
def test_a_penalty_returning_a_detached_zero_first_is_asked_again_until_its_loss_has_a_gradient(caplog, monkeypatch,
                                                                                                 as_number):
    """The check of a detached loss once stopped at a first detached 0 (taken for a warm-up's skipped step), so a
    penalty that later returned detached values trained silently without effect. A tensor 0 is asked again on
    logging steps only (values are read there anyway: no host synchronization on the others), a number at once."""
    logging_step = {"now": False}
    monkeypatch.setattr(GANModule, "is_logging_step", property(lambda self: logging_step["now"]))
    module = make_module(penalties={"late": ZeroFirstPenalty(2, "number" if as_number else "detached", as_number),
                                    "real": ZeroFirstPenalty(2, "gradient", as_number)})
    _, opt_d = optimizers(module)

    def said_after_a_step() -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="gan"):
            module.discriminator_step(torch.randn(8, *POINTS), opt_d)
        return [r.getMessage() for r in caplog.records if "no gradient" in r.getMessage()]

    assert said_after_a_step() == [] and said_after_a_step() == []  # detached zeros: a warm-up, no word
    assert module._unchecked_penalties == {"late", "real"}  # still asked
    if not as_number:  # a detached tensor on a step that logs nothing is not read
        assert said_after_a_step() == [] and module._unchecked_penalties == {"late"}  # "real" has a gradient now
        logging_step["now"] = True
    said = said_after_a_step()  # a number: at its first value that is not 0; a tensor: on the logging step
    assert len(said) == 1 and said[0].startswith(f"model.penalties.late._target_={HERE}.ZeroFirstPenalty: its 'loss' (")
    assert module._unchecked_penalties == set()
    assert said_after_a_step() == []  # said once


def test_a_detached_penalty_is_warned_of_once_and_a_detached_zero_is_not(caplog):
    """A warm-up penalty may return 0 (a tensor or a Python number, which trained before these checks) on steps it
    skips; a number that is not 0 has no gradient either."""
    module = make_module(penalties={"mine": DetachedPenalty(), "skipping": DetachedPenalty(0.0),
                                    "warm_up": DetachedPenalty(0.0, as_number=True)})
    _, opt_d = optimizers(module)
    with caplog.at_level(logging.WARNING, logger="gan"):
        for _ in range(3):
            module.discriminator_step(torch.randn(8, *POINTS), opt_d)
    warnings = [r.getMessage() for r in caplog.records if "no gradient" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"model.penalties.mine._target_={HERE}.DetachedPenalty: its 'loss' (")
    assert "has no gradient" in warnings[0] and "the penalty has no effect" in warnings[0]
    caplog.clear()
    module = make_module(penalties={"number": DetachedPenalty(0.5, as_number=True)})
    with caplog.at_level(logging.WARNING, logger="gan"):
        module.discriminator_step(torch.randn(8, *POINTS), optimizers(module)[1])
    assert [r.getMessage() for r in caplog.records if "no gradient" in r.getMessage()] == [
        f"model.penalties.number._target_={HERE}.DetachedPenalty: its 'loss' (0.5) has no gradient (detached, read with "
        ".item() or computed under no_grad), so adding it to D's loss changes nothing and the penalty has no effect; "
        "return a tensor computed from critic(x) or the logits it is given"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gan"):  # the built-in penalties: no word
        module = make_module(penalties={"r1": R1Penalty()})
        module.discriminator_step(torch.randn(8, *POINTS), optimizers(module)[1])
    assert not [r for r in caplog.records if "no gradient" in r.getMessage()]


# ------------------------------------------------------------------------------------------------------- networks
@pytest.mark.parametrize("shape,out,got,expected", [
    (POINTS, 1, r"\(8, 1\)", r"\(8, 2\)"),  # one number per 2-D point (a discriminator seeing both at once)
    (IMAGES, None, r"\(8, 256\)", r"\(8, 1, 16, 16\)"),  # flat images, before a batch-norm discriminator's own check
])
def test_a_generator_output_of_the_wrong_shape_is_refused_before_it_meets_the_reals(shape, out, got, expected):
    module = make_module(shape, generator=FlatGenerator(8, shape, out=out))
    assert module.joint_discriminator_pass == (shape == POINTS)
    refused_at_first_d_step(module, rf"^model.generator._target_={HERE}.FlatGenerator generated samples of shape {got} "
                                    rf"for a batch of 8 real samples of shape .*; expected {expected}, N samples of the "
                                    r"data's shape", shape)


@pytest.mark.parametrize("dtype,device,message", [
    (torch.float64, None, r"generated float64 samples, but the real batch is float32; expected samples of the real "
                          r"batch's dtype \(no .double\(\) or integer tensors in generate\)"),
    (torch.int64, None, r"generated int64 samples, but the real batch is float32"),
    (None, "meta", r"generated samples on meta, but the real batch is on cpu; expected samples on the generator's device"),
])
def test_generator_samples_of_another_dtype_or_device_are_refused_before_they_meet_the_reals(dtype, device, message):
    module = make_module(generator=CastingGenerator(8, POINTS, dtype=dtype, device=device))
    refused_at_first_d_step(module, rf"^model.generator._target_={HERE}.CastingGenerator {message}")


def test_bfloat16_samples_beside_float32_reals_are_mixed_precision_not_a_mistake():
    from gan.nets.base import check_generated

    real = torch.randn(4, 2)
    check_generated(FlatGenerator(8, POINTS), real.to(torch.bfloat16), real)  # what autocast's layers return
    check_generated(FlatGenerator(8, POINTS), real.double(), real.double())  # a run in float64 (trainer.precision=64)


def test_a_discriminator_without_blocks_is_refused_when_the_module_is_built():
    with pytest.raises(ConfigError, match=rf"^model.discriminator._target_={HERE}.NoBlocksD has no self.blocks nor "
                                          r"self.head \(it defines forward, which the module does not call: it calls "
                                          r"evaluate\): a discriminator of one's own subclasses gan.nets.Discriminator"):
        make_module(discriminator=NoBlocksD(POINTS))
    make_module(discriminator=OwnEvaluateD(POINTS))  # its own evaluate: no blocks needed ...
    with pytest.raises(ConfigError, match=r"^model.discriminator._target_=.*OwnEvaluateD has no self.blocks, whose "
                                          r"outputs feature matching compares"):
        make_module(discriminator=OwnEvaluateD(POINTS), feature_matching_weight=1.0)  # ... but for feature matching


def test_a_discriminator_with_more_than_one_logit_per_sample_is_refused():
    refused_at_first_d_step(make_module(discriminator=TwoHeadD(POINTS)),
                            rf"^model.discriminator._target_={HERE}.TwoHeadD: its head gave outputs of shape \(16, 2\) "
                            r"for 16 samples; expected one logit per sample, shape \(16,\) or \(16, 1\)")
    # its own evaluate: the losses' means would have taken (N, 2) logits silently
    refused_at_first_d_step(make_module(discriminator=OwnEvaluateD(POINTS, outputs=2)),
                            rf"^model.discriminator._target_={HERE}.OwnEvaluateD: evaluate\(x, labels\) returned "
                            r"logits of shape \(16, 2\) for 16 samples; expected one logit per sample, shape \(16,\)$")


# ------------------------------------------------------------------------------------------------ a correct run
@pytest.mark.parametrize("shape", [POINTS, IMAGES])  # D treating samples apart (one pass), and a batch-norm D
def test_the_checks_run_once_and_change_no_number_of_a_correct_run(shape):
    """Two steps with the first-step checks and without them give the same weights, batch-norm statistics and random
    state; the checks are off after the first step."""
    def run(checked: bool):
        module = make_module(shape, penalties={"r1": R1Penalty(gamma=1.0)})
        if not checked:
            module._check_next_discriminator_step = module._check_next_generator_step = False
            module._unchecked_penalties = set()
        opt_g, opt_d = optimizers(module)
        torch.manual_seed(1)
        for _ in range(2):
            real = torch.randn(8, *shape)
            module.discriminator_step(real, opt_d)
            module.generator_step(real, opt_g)
        return module, torch.random.get_rng_state()

    checked, state = run(True)
    assert not (checked._check_next_discriminator_step or checked._check_next_generator_step or checked._unchecked_penalties)
    unchecked, unchecked_state = run(False)
    assert torch.equal(state, unchecked_state)
    for a, b in zip(checked.state_dict().values(), unchecked.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_train_py_refuses_a_loss_of_one_s_own_in_one_line_with_status_2(tmp_path):
    """The entry point: one line on stderr, exit status 2, no traceback, nothing trained."""
    overrides = tiny_overrides("gan", "toy2d_ring", steps=2) + [f"loss._target_={HERE}.TensorLoss"]
    result = subprocess.run([sys.executable, "train.py", *overrides, f"hydra.run.dir={tmp_path / 'run'}",
                             f"paths.data_dir={tmp_path / 'data'}"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"})
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"error: loss._target_={HERE}.TensorLoss: discriminator_loss(real_logits, fake_logits, "
                                "...) returned a tensor of shape (); expected a dict of named terms"), lines[-3:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists() or not any((tmp_path / "run" / "checkpoints").iterdir())
