"""The exponential moving average of the generator's weights (Karras et al. 2018, Yazici et al. 2019)."""
from __future__ import annotations

import copy

import torch
from torch import nn

from gan.nets.base import Generator
from gan.utils.errors import ConfigError


class GeneratorEMA(nn.Module):
    """A copy of the generator whose weights follow ema = decay * ema + (1 - decay) * weights.

    The first update copies the weights (the copy made at construction is the untrained generator, and
    until that update the module shows the raw generator instead). Buffers (batch-norm statistics) are
    averaged like the weights. ``decay`` may change between updates (a half-life schedule sets it).

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

    @property
    def has_average(self) -> bool:
        return self.updates > 0

    @torch.no_grad()
    def update(self, generator: nn.Module) -> None:
        # not cached: moving a module to another device replaces its buffer tensors
        own = list(self.module.parameters()) + [b for b in self.module.buffers() if b.is_floating_point()]
        theirs = [t.detach() for t in generator.parameters()] + [b for b in generator.buffers() if b.is_floating_point()]
        torch._foreach_lerp_(own, theirs, 1.0 if self.updates == 0 else 1.0 - self.decay)
        for own_buffer, buffer in zip(self.module.buffers(), generator.buffers()):
            if not own_buffer.is_floating_point():  # counters such as num_batches_tracked are copied
                own_buffer.copy_(buffer)
        self.n_averaged.add_(1)
        self.updates += 1

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.updates = int(self.n_averaged)

    def extra_repr(self) -> str:
        return f"decay={self.decay}"
