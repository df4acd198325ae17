"""GANModelCheckpoint: no non-finite weights on disk, signal handlers given back (atomic writes and a full
disk: tests/test_resume.py)."""
from __future__ import annotations

import signal

import pytest
import torch

from gan.callbacks.checkpoint import first_nonfinite_tensor
from gan.utils.checkpoint import load_checkpoint
from tests.callbacks.test_gan_health import nan_from_d_step
from tests.conftest import tiny_overrides
from train import train


def test_non_finite_weights_are_never_saved_even_when_training_goes_on(make_cfg, tmp_path, monkeypatch):
    nan_from_d_step(7, monkeypatch)  # NaN weights from generator step 7 of 16
    cfg = make_cfg(tiny_overrides("gan", "toy2d_ring", steps=16) + [
        "metrics=none", "callbacks.gan_health.divergence.action=warn",  # the run goes on with NaN weights
        "callbacks.model_checkpoint.every_n_train_steps=4", "callbacks.model_checkpoint.save_top_k=-1"])
    _, objects = train(cfg)
    assert objects["module"].generator_steps == 16 and objects["stopped_by"] is None
    assert not all(torch.isfinite(p).all() for p in objects["module"].parameters())
    saved = {p.name: load_checkpoint(p) for p in (tmp_path / "run" / "checkpoints").glob("*.ckpt")}
    # saves every 2 generator steps: 2, 4, 6 hold finite weights; 8 ... 16 and the final last.ckpt were refused
    assert sorted(saved) == ["last.ckpt", "step0000004.ckpt", "step0000008.ckpt", "step0000012.ckpt"]
    assert saved["last.ckpt"]["gan_counters"]["generator_steps"] == 6
    assert all(torch.isfinite(v).all() for c in saved.values() for v in c["state_dict"].values() if v.is_floating_point())


@pytest.mark.parametrize("where,value", [(None, None), ("layer.weight", float("nan")), ("layer.bias", -float("inf")),
                                         ("scale", float("inf"))])
def test_first_nonfinite_tensor_names_the_one_holding_nan_or_inf(where, value):
    module = torch.nn.Module()
    module.layer = torch.nn.Linear(3, 4)
    module.register_buffer("scale", torch.full((5,), 3.0e38))  # finite, though its sum of squares is not
    module.register_buffer("empty", torch.zeros(0))
    module.register_buffer("count", torch.tensor(7))  # integers cannot hold NaN/Inf
    if where is not None:
        tensor = module.get_parameter(where) if "." in where else module.get_buffer(where)
        with torch.no_grad():
            tensor.view(-1)[1] = value
    assert first_nonfinite_tensor(module) == where


def test_signal_handlers_in_place_before_training_are_restored(make_cfg):
    """Lightning's and this callback's handlers are gone once fit returns: a SIGTERM during the W&B finish or
    between multirun jobs reaches the handler the process had (by default: the process ends)."""

    def before(signum, frame):  # stands for whatever handler the process had
        pass

    previous = signal.signal(signal.SIGTERM, before)
    try:
        train(make_cfg(tiny_overrides("gan", "toy2d_ring", steps=2) + ["metrics=none"]))
        assert signal.getsignal(signal.SIGTERM) is before
        assert signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None)
    finally:
        signal.signal(signal.SIGTERM, previous)
