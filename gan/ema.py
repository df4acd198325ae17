"""The exponential moving average of the generator's weights (Karras et al. 2018, Yazici et al. 2019)."""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.parametrizations import _SpectralNorm

from gan.nets.base import Generator
from gan.utils.errors import ConfigError


class GeneratorEMA(nn.Module):
    """A copy of the generator whose weights follow ema = decay * ema + (1 - decay) * weights.

    The first update copies the weights (the copy made at construction is the untrained generator, and
    until that update the module shows the raw generator instead). Floating-point buffers are averaged like
    the weights, except batch-norm statistics: those of the raw generator belong to its own weights, so
    :meth:`averaged` recomputes them for the averaged weights when it is read after an update. ``decay``
    may change between updates (a half-life schedule sets it).

    State dict keys match ``torch.optim.swa_utils.AveragedModel``'s (``module.*``, ``n_averaged``), so
    checkpoints of either read the same way.
    """

    def __init__(self, generator: Generator, decay: float):
        super().__init__()
        self.module = copy.deepcopy(generator).requires_grad_(False)
        self.register_buffer("n_averaged", torch.tensor(0, dtype=torch.long))
        self.decay = float(decay)
        if not 0.0 <= self.decay < 1.0:
            raise ConfigError(f"model.ema_decay must be in [0, 1), got {decay}")
        #: host-side mirror of n_averaged, so the per-step check needs no device sync
        self.updates = 0
        self.statistics_stale = True
        norms = [name for name, m in self.module.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        # spectral norm's power-iteration vectors: copied from the raw generator (a warm start) and iterated for the
        # averaged weights when read. Averaged, they were no unit vectors (an average of unit vectors is shorter), and
        # in eval mode spectral norm divides by u . W v as it stands: an audit found a generator with spectral norm
        # and no batch norm (whose statistics' recomputation iterates them) 8-13 % too large per layer
        spectral = [name for name, m in self.module.named_modules() if isinstance(m, _SpectralNorm)]
        # buffers that follow the raw generator's (batch-norm statistics are recomputed instead): floating-point
        # ones are averaged like the weights, integer ones and spectral norm's vectors copied
        followed = [(name, b) for name, b in self.module.named_buffers() if not any(name.startswith(f"{norm}.") for norm in norms)]
        in_spectral = lambda name: any(name.startswith(f"{module}.") for module in spectral)  # noqa: E731
        self.averaged_buffers = [name for name, b in followed if b.is_floating_point() and not in_spectral(name)]
        self.copied_buffers = [name for name, b in followed if not b.is_floating_point() or in_spectral(name)]

    @property
    def has_average(self) -> bool:
        return self.updates > 0

    @torch.no_grad()
    def update(self, generator: nn.Module) -> None:
        # not cached: moving a module to another device replaces its buffer tensors
        own_buffers, their_buffers = dict(self.module.named_buffers()), dict(generator.named_buffers())
        own = list(self.module.parameters()) + [own_buffers[name] for name in self.averaged_buffers]
        theirs = [t.detach() for t in generator.parameters()] + [their_buffers[name] for name in self.averaged_buffers]
        torch._foreach_lerp_(own, theirs, 1.0 if self.updates == 0 else 1.0 - self.decay)
        for name in self.copied_buffers:
            own_buffers[name].copy_(their_buffers[name])
        self.n_averaged.add_(1)
        self.updates += 1
        self.statistics_stale = True

    def averaged(self) -> Generator:
        """The averaged generator, its batch-norm statistics and spectral norms' singular vectors recomputed for
        its weights when stale."""
        if self.statistics_stale:
            self.module.recompute_batch_norm_statistics()
            self.module.recompute_spectral_norms()
            self.statistics_stale = False
        return self.module

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.updates = int(self.n_averaged)
        self.statistics_stale = True

    def extra_repr(self) -> str:
        return f"decay={self.decay}"
