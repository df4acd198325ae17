"""GANModelCheckpoint: no non-finite weights on disk, signal handlers given back (atomic writes and a full
disk: tests/test_resume.py)."""
from __future__ import annotations

import signal

import torch

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
