"""Where a training run reads values back to the host.

On a GPU every read (``.item()``, ``float(t)``, ``bool(t)``, ``.tolist()``, ``.cpu()``, ``.numpy()``) makes the
CPU wait for every queued kernel, so a read at every step caps a small network's speed at the launch latency; so
does a tensor made on the device from host values (``torch.tensor(0.5, device=...)``: a blocking copy).
A run may read where it uses the values: logging steps, the health check every ``sync_every_n_iterations``,
the gradient-norm, sample-grid and metric steps, and the end. On the CPU these reads cost nothing, so this
test counts them instead of timing them: every read in the fit loop is recorded with the generator step at
which it happened, and with all those cadences at multiples of 10, any read at another step is one that a
GPU would pay at every step. Conditional runs are left out: their networks check the labels where reading
them is free, on the CPU only (``tests/test_conditional.py`` checks that labels on a device are not read, and
``tests/test_gpu.py`` runs this check on a GPU, cgan included, with CUDA's own record of every wait).
"""
from __future__ import annotations

import collections
import threading
import traceback

import lightning.pytorch as pl
import pytest
import torch

from gan.callbacks.gan_health import GANHealth
from gan.utils.config import PROJECT_ROOT
from tests.conftest import tiny_overrides
from train import train

READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy")
COPIES_TO_THE_DEVICE = ("tensor", "as_tensor")
EVERY = 10
PROJECT = str(PROJECT_ROOT) + "/"
NOT_OURS = tuple(str(PROJECT_ROOT / folder) + "/" for folder in (".venv", "tests"))
STEPS = 30
CADENCES = [
    "logger=csv",
    f"trainer.log_every_n_steps={EVERY}",
    f"callbacks.grad_norm.every_n_generator_steps={EVERY}",
    f"callbacks.sample_grid.every_n_generator_steps={2 * EVERY}",
    f"callbacks.gan_health.sync_every_n_iterations={EVERY}",
    f"callbacks.gan_health.mode_collapse.every_n_generator_steps={EVERY}",
    "callbacks.gan_health.mode_collapse.start_generator_step=0",
    "callbacks.gan_health.mode_collapse.num_samples=16",
]
RUNS = {
    "dcgan": tiny_overrides("dcgan", "toy2d_grid", STEPS),
    "wgan_gp": tiny_overrides("wgan_gp", "toy2d_grid", STEPS),
    "r3gan": tiny_overrides("r3gan", "toy2d_grid", STEPS),
    "gan": tiny_overrides("gan", "toy2d_grid", STEPS),
    "wgan": tiny_overrides("wgan", "toy2d_grid", STEPS),  # weight clipping
    "lsgan": tiny_overrides("lsgan", "digits", STEPS),
    "sngan-resnet-diffaugment": tiny_overrides("sngan", "digits", STEPS) + [
        "arch=resnet", "model.generator.width=4", "model.discriminator.width=4", "augment=diffaugment"],
    "dcgan-tricks": tiny_overrides("dcgan", "digits", STEPS) + [
        "model.ema_decay=0.9", "model.real_label_range=[0.7,1.0]", "model.label_flip_prob=0.1",
        "model.instance_noise_std=0.1", "model.feature_matching_weight=1", "model.discriminator.minibatch=stddev",
    ],
    "sngan-ada-lecam": tiny_overrides("sngan", "digits", STEPS) + [
        "augment=ada", "model.augment.interval=2", "+model.penalties.lecam={_target_:gan.losses.LeCamPenalty,weight:0.3}",
    ],
}


class ReadRecorder(pl.Callback):
    """Records each read between the start and the end of the fit loop: the generator step it happened at and
    the innermost frame of this project's code (not the tests', not an installed package's) that made it."""

    def __init__(self):
        self.module, self.reads, self.background_reads = None, collections.defaultdict(set), set()

    def on_train_start(self, trainer, pl_module):
        self.module = pl_module

    def on_train_end(self, trainer, pl_module):
        self.module = None

    def record(self) -> None:
        if self.module is None:
            return
        stack = traceback.extract_stack()
        if any(frame.name == "on_before_batch_transfer" for frame in stack):
            return  # the batch as the loader gave it: on the host on any machine, so reading it waits for nothing
        if any("/torch/optim/" in frame.filename for frame in stack):
            return  # torch's optimizers keep their step counters on the host unless fused (wgan's RMSprop reads one)
        ours = [f for f in stack if f.filename.startswith(PROJECT) and not f.filename.startswith(NOT_OURS)]
        where = f"{ours[-1].filename.rsplit('/', 2)[-1]}:{ours[-1].lineno}" if ours else "torch or Lightning"
        if threading.current_thread() is not threading.main_thread():
            # the sample grid's picture writer reads its samples on a thread of its own, which training does not wait
            # for: filed under the step training had reached, a loaded machine put the read of step 20's grid at
            # step 25 (a lowest-versions audit)
            self.background_reads.add(where)
            return
        self.reads[self.module.generator_steps].add(where)


def record_reads(make_cfg, monkeypatch, overrides: list[str], install) -> ReadRecorder:
    """Trains ``overrides`` at the cadences above with a :class:`ReadRecorder` whose ``record`` ``install(recorder)``
    has hooked to whatever counts as a read (here: the tensor methods; tests/test_gpu.py: CUDA's sync warnings)."""
    recorder = ReadRecorder()
    install(recorder)
    start = GANHealth.on_train_start

    def as_on_a_gpu(self, trainer, pl_module):
        # on the CPU in one process the health callback also reads G's loss every iteration, to stop a NaN run
        # at once, because the read is free there (gan/callbacks/gan_health.py); on a GPU it does not
        start(self, trainer, pl_module)
        self._watch_generator_loss = False

    monkeypatch.setattr(GANHealth, "on_train_start", as_on_a_gpu)
    original_init = pl.Trainer.__init__
    monkeypatch.setattr(pl.Trainer, "__init__", lambda self, *a, callbacks=(), **k: original_init(
        self, *a, callbacks=[*callbacks, recorder], **k))
    train(make_cfg(overrides + CADENCES))
    return recorder


def assert_reads_only_at_the_cadences(recorder: ReadRecorder, first_steps_exempt: int = 0) -> None:
    """No read at a generator step off the cadences, after the first ``first_steps_exempt`` (one-time work)."""
    assert recorder.reads, "no read recorded: the recorder is not attached"  # logging steps read, at least
    off = {step: sorted(where) for step, where in recorder.reads.items() if step % EVERY and step > first_steps_exempt}
    assert off == {}, off
    # off the training thread: only the picture writer's, of the samples it was handed
    assert {where.split(":")[0] for where in recorder.background_reads} <= {"visualize.py"}, recorder.background_reads


@pytest.mark.parametrize("run", sorted(RUNS))
def test_a_run_reads_values_back_only_at_the_steps_that_use_them(make_cfg, monkeypatch, run):
    def on_tensor_reads(recorder):
        for name in READS:
            original = getattr(torch.Tensor, name)

            def read(self, *args, _original=original, **kwargs):
                recorder.record()
                return _original(self, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, read)
        # the other way: a tensor made on a device from host values (torch.tensor(0.5, device=...)) is a blocking
        # copy, which on a GPU waits for every queued kernel as a read does (torch.full(..., device=...) fills there)
        for name in COPIES_TO_THE_DEVICE:
            original = getattr(torch, name)

            def copy(data, *args, _original=original, **kwargs):
                if kwargs.get("device") is not None and not isinstance(data, torch.Tensor):
                    recorder.record()
                return _original(data, *args, **kwargs)

            monkeypatch.setattr(torch, name, copy)

    assert_reads_only_at_the_cadences(record_reads(make_cfg, monkeypatch, RUNS[run], on_tensor_reads))
