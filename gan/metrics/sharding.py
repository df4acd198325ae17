"""How one evaluation's samples are split into batches and shared between DDP ranks.

The samples 0..N-1 are cut into batches of ``batch_size``; batch b's latent codes come from a generator
seeded by (seed, b) alone, so a batch is the same whichever process draws it. Rank r draws batches
r, r + W, r + 2W, ... of W ranks: the shares are disjoint, their union is the single-process set, and
gathering the features in batch order gives the single-process features exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch.distributed as dist

from gan.utils.distributed import rank_and_world_size


def batch_seed(seed: int, batch: int) -> int:
    """The seed of batch ``batch``'s latent codes. torch's CPU generator keeps only 32 bits of a seed, so
    (seed, batch) is hashed to 32 well-mixed bits rather than combined arithmetically."""
    return int(np.random.SeedSequence([int(seed), int(batch)]).generate_state(1)[0])


@dataclass(frozen=True)
class Batches:
    """``total`` samples in batches of ``batch_size`` (the last one shorter)."""

    total: int
    batch_size: int

    def __len__(self) -> int:
        return math.ceil(self.total / self.batch_size)

    def start(self, batch: int) -> int:
        return batch * self.batch_size

    def size(self, batch: int) -> int:
        return min(self.batch_size, self.total - self.start(batch))

    def of_rank(self, rank: int, world_size: int) -> range:
        """The batches rank ``rank`` of ``world_size`` draws: every world_size-th, from its rank on."""
        return range(rank, len(self), world_size)


def distributed() -> bool:
    return rank_and_world_size()[1] > 1


def gather_to_rank_zero(local: Any) -> list[Any] | None:
    """Every rank's ``local`` (picklable), in rank order, on rank 0; None on the other ranks."""
    rank, world_size = rank_and_world_size()
    if world_size == 1:
        return [local]
    gathered: list[Any] | None = [None] * world_size if rank == 0 else None
    dist.gather_object(local, gathered, dst=0)
    return gathered


def broadcast_from_rank_zero(value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not distributed():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
