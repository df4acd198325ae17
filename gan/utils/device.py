"""What depends on the machine: process-wide settings of the torch runtime, and whether bf16 is native."""
from __future__ import annotations

import os

from gan.utils.errors import ConfigError

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


def skip_nvml_cuda_check_without_gpu() -> None:
    """Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 on import, so that asking whether CUDA is available
    cannot poison a later fork; torch then loads NVML at every ``torch.cuda.is_available()``, which
    Adam's step calls: about 0.2 ms per optimizer step on a machine without a GPU (6-8 % of a small
    network's iteration). Where no GPU exists there is no CUDA state to protect, so the variable goes."""
    import lightning.fabric  # noqa: F401  (sets the variable on import)
    import torch

    if os.environ.get(NVML_CHECK) == "1" and torch.cuda.device_count() == 0:
        del os.environ[NVML_CHECK]


def bf16_is_native(accelerator: str = "auto") -> bool:
    """Whether the device a run with Lightning's ``accelerator`` trains on multiplies bf16 matrices in hardware:
    a GPU that supports bf16 without emulation (Ampere and newer), or a CPU with AVX512-BF16 or AMX tiles
    (torch's own capability checks). Elsewhere bf16 products are emulated, not expected to beat fp32."""
    import torch

    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if accelerator not in ("cpu", "auto"):
        return False  # MPS, TPU, ...: not measured, so plain fp32
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private in torch 2.x, hence getattr
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def bf16_where_native(accelerator: str = "auto") -> str:
    """The ``trainer.precision`` of a preset measured in bf16: ``bf16-mixed`` where bf16 is native (about half
    the time of fp32 products), else ``32-true``. A resolver: ``${bf16_where_native:${trainer.accelerator}}``."""
    return "bf16-mixed" if bf16_is_native(str(accelerator)) else "32-true"


def check_torch_device(device, option: str = "device", fallback: str = "auto or cpu") -> None:
    """``device`` (anything but ``auto``) names a device this machine has: torch failed at the first tensor moved to a
    missing CUDA device, with a driver message that named no option."""
    import torch

    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"{option}={device} is not valid: expected {fallback.replace(' or ', ', ')}, cuda, cuda:<index> or "
                          "another torch device") from None
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (chosen.index is not None and chosen.index >= count):
            raise ConfigError(f"{option}={device}: this machine has {count} CUDA device{'' if count == 1 else 's'}; "
                              f"expected {fallback}{f', or cuda:0 to cuda:{count - 1}' if count else ''}")


def physical_memory_bytes() -> int | None:
    """This machine's physical memory (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def human_size(size: float) -> str:
    """``size`` bytes in the largest binary unit up to TiB that leaves at least 1 (``1,936 bytes``, ``23.5 GiB``)."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size:,.0f} bytes"
