"""GPU-only checks: mixed precision with the gradient penalty, torch.compile. Skipped without CUDA.

    pytest tests/test_gpu.py -v    # on a machine with a GPU

(A 2-process DDP check on GPUs needs 2 devices; tests/test_ddp.py checks the same on CPU with gloo.)
"""
import math

import pytest
import torch

import gan
from gan.losses.penalties import gradient_norm_penalty, interpolate
from tests.conftest import tiny_overrides
from train import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# after tiny_overrides, whose trainer.accelerator=cpu they override
GPU = ["trainer=gpu", "trainer.accelerator=gpu", "metrics=none"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_penalty_under_autocast_is_the_fp32_penalty(dtype):
    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 4, 2, 1), torch.nn.LeakyReLU(0.2), torch.nn.Flatten(),
                                 torch.nn.Linear(8 * 14 * 14, 1)).cuda()
    # scale the weights down so fp16 input gradients (~1e-8) would underflow without the fp32 path
    with torch.no_grad():
        for p in critic.parameters():
            p.mul_(1e-3)
    points = interpolate(torch.randn(16, 1, 28, 28, device="cuda"), torch.randn(16, 1, 28, 28, device="cuda"))
    reference = gradient_norm_penalty(critic, points, center=0.0)
    with torch.autocast("cuda", dtype=dtype):
        mixed = gradient_norm_penalty(critic, points, center=0.0)
    assert mixed.dtype == torch.float32
    assert reference > 0
    torch.testing.assert_close(mixed, reference, rtol=1e-5, atol=0)


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_wgan_gp_trains_in_mixed_precision(make_cfg, precision):
    cfg = make_cfg(tiny_overrides("wgan_gp", steps=3) + GPU + [f"trainer.precision={precision}"])
    metrics, objects = train(cfg)
    module = objects["module"]
    assert module.generator_steps == 3
    assert metrics["train/d/gp"] > 0 and math.isfinite(metrics["train/d/gp"])
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert all(p.dtype == torch.float32 for p in module.parameters())  # mixed: fp32 master weights


@pytest.mark.parametrize("model", ["dcgan", "wgan_gp"])
def test_compile_keeps_checkpoint_keys(make_cfg, tmp_path, model):
    _, objects = train(make_cfg(tiny_overrides(model, steps=3) + GPU + ["compile=true"]))
    module = objects["module"]
    assert module.generator._compiled_call_impl is not None
    assert (module.discriminator._compiled_call_impl is not None) == (len(module.penalties) == 0)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    # the raw weights (dcgan's digits preset keeps an EMA, which load_generator returns by default)
    generator = gan.load_generator(checkpoint, use_ema=False)
    state = module.generator.state_dict()
    assert set(generator.state_dict()) == set(state)
    assert all(torch.equal(value.cpu(), generator.state_dict()[key]) for key, value in state.items())
    assert set(gan.load_generator(checkpoint).state_dict()) == set(state)  # the EMA copy: same keys, no _orig_mod.


@pytest.mark.parametrize("run", ["dcgan", "wgan_gp", "wgan", "r3gan", "dcgan-tricks", "sngan-ada-lecam", "sngan-resnet-diffaugment",
                                 "cgan"])
def test_a_gpu_run_synchronizes_only_at_the_steps_that_read_values(make_cfg, monkeypatch, run):
    """tests/test_host_reads.py on the device itself: CUDA's sync debug mode warns at every operation that makes the
    host wait for the GPU (a read, a blocking copy, an operator whose output size depends on values), including
    those inside torch and Lightning that no tensor method shows on the CPU; each is recorded with its generator step."""
    import warnings

    from tests.test_host_reads import RUNS, assert_reads_only_at_the_cadences, record_reads

    overrides = RUNS.get(run) or tiny_overrides("cgan", "digits", 30)  # conditional: the labels stay on the device

    def on_sync_warnings(recorder):
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if "synchronizing" in str(message):
                recorder.record()
            else:
                shown(message, category, filename, lineno, file, line)

        monkeypatch.setattr(warnings, "showwarning", show)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            recorder = record_reads(make_cfg, monkeypatch, overrides + GPU, on_sync_warnings)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert_reads_only_at_the_cadences(recorder, first_steps_exempt=1)  # the first iteration's one-time set-up may wait


def test_in_memory_data_is_held_on_the_gpu_and_only_pinned_indices_travel(data_dir):
    """``data.on_device: auto`` on a GPU: the digits live on the device, each batch's indices are pinned (so their
    copy does not make the host wait: from unpinned memory CUDA waits for the stream first, which no sync debug
    mode reports) and the gathered batches are the host loader's."""
    from tests.data.test_on_device import delivered, in_memory_data, training_loader

    held, host = in_memory_data("digits", data_dir), in_memory_data("digits", data_dir, on_device=False)
    held_batches, host_batches = iter(training_loader(held, device="cuda")), iter(training_loader(host, device="cuda"))
    assert [tensor.device.type for tensor in held._held] == ["cuda", "cuda"]
    for _ in range(6):
        batch = next(held_batches)
        assert batch.index.is_pinned()
        gathered = delivered(held, batch, device="cuda")
        assert all(mine.device.type == "cuda" for mine in gathered)
        assert all(torch.equal(mine.cpu(), theirs) for mine, theirs in zip(gathered, next(host_batches)))
