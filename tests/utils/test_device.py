"""Whether bf16 is native, and the precision the resolver gives a preset."""
import pytest
import torch

from gan.utils.device import bf16_is_native, bf16_where_native


@pytest.mark.parametrize("avx512_bf16, amx, expected", [(True, False, "bf16-mixed"), (False, True, "bf16-mixed"),
                                                         (False, False, "32-true")])
def test_a_cpu_gets_bf16_only_where_it_multiplies_bf16_natively(monkeypatch, avx512_bf16, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bf16_where_native("cpu") == bf16_where_native("auto") == expected
    assert bf16_where_native("mps") == "32-true"  # not measured there


def test_a_gpu_needs_bf16_without_emulation(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for native in (True, False):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True, n=native: n or including_emulation)
        assert bf16_is_native("gpu") is native and bf16_is_native("auto") is native


@pytest.mark.parametrize("native", [True, False])
def test_the_r3gan_grid_preset_takes_bf16_where_native_and_the_ring_stays_fp32(monkeypatch, native):
    from hydra import compose, initialize_config_dir

    from gan.utils.config import PROJECT_ROOT

    monkeypatch.setattr("gan.utils.device.bf16_is_native", lambda accelerator="auto": native)
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        grid = compose("train", overrides=["model=r3gan", "data=toy2d_grid"])
        ring = compose("train", overrides=["model=r3gan", "data=toy2d_ring"])
        forced = compose("train", overrides=["model=r3gan", "data=toy2d_grid", "trainer.precision=32-true"])
    assert grid.trainer.precision == ("bf16-mixed" if native else "32-true")
    assert ring.trainer.precision == forced.trainer.precision == "32-true"


def test_a_cuda_index_past_the_last_device_is_refused_naming_the_count(monkeypatch):
    """With one GPU, cuda:1 is one past the last (cuda:0): refused before training, not at the first tensor moved
    there (a mutation audit: only indices above the count were refused)."""
    from gan.utils.device import check_torch_device
    from gan.utils.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for fine in ("cuda", "cuda:0", "cpu"):
        check_torch_device(fine)
    with pytest.raises(ConfigError, match=r"^device=cuda:1: this machine has 1 CUDA device; expected auto or cpu, or "
                                          r"cuda:0 to cuda:0$"):
        check_torch_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_torch_device("cuda:1")
    with pytest.raises(ConfigError, match=r"^device=cuda:2: this machine has 2 CUDA devices; "):
        check_torch_device("cuda:2")
