"""This process's place among the training processes."""
from __future__ import annotations

import os

import torch.distributed as dist


def rank_and_world_size() -> tuple[int, int]:
    """(rank, number of processes) of the initialised process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_rank() -> int:
    """This process's rank on its node, from the launcher's environment (torchrun and Lightning set
    LOCAL_RANK, srun SLURM_LOCALID), before any process group exists; 0 for a single process."""
    for variable in ("LOCAL_RANK", "SLURM_LOCALID"):
        if os.environ.get(variable):
            return int(os.environ[variable])
    return 0


def is_rank_zero() -> bool:
    """Whether this process is rank 0 of a distributed run (or not distributed), by Lightning's own record of it,
    which holds before any process group exists (set from the launcher's environment)."""
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0
