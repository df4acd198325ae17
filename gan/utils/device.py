"""Process-wide settings of the torch runtime that depend on the machine."""
from __future__ import annotations

import os

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
