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
