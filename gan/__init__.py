"""A GAN experiment framework on PyTorch Lightning + Hydra."""
from gan.resolvers import register
from gan.utils.console import quiet_third_party_notices
from gan.utils.device import skip_nvml_cuda_check_without_gpu

register()
quiet_third_party_notices()
skip_nvml_cuda_check_without_gpu()


def load_generator(checkpoint_path, use_ema: bool = True, device="cpu"):
    """The trained generator of a checkpoint (EMA weights when the run kept them and had updated them),
    with ``.sample(n)``."""
    from gan.utils.checkpoint import load_generator as _load

    return _load(checkpoint_path, use_ema=use_ema, device=device)


__all__ = ["load_generator"]
