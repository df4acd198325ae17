"""This process's place among the training processes."""
from __future__ import annotations

import torch.distributed as dist


def rank_and_world_size() -> tuple[int, int]:
    """(rank, number of processes) of the initialised process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
