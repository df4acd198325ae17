"""The machines of every rank of a distributed run, in its provenance record.

``gan.utils.provenance`` records the start of a run on rank 0 before training, when no process group exists yet, so
its ``hardware`` is rank 0's node. A multi-node run may put its ranks on other hosts with other GPUs: once the
process group exists (Lightning's setup), every rank's ``hardware()`` is gathered and rank 0 adds ``machines`` to the
start's record (in ``provenance.json`` and in every checkpoint), one entry per distinct machine with its ranks.
"""
from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
import torch.distributed as dist

from gan.utils.distributed import rank_and_world_size
from gan.utils.provenance import hardware, write_history

log = logging.getLogger("gan")


def machines_of_ranks(per_rank: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``per_rank[r]`` is rank r's machine: one entry per distinct machine, in the order of its first rank, with
    ``ranks`` (sorted) before its fields."""
    machines: list[dict[str, Any]] = []
    for rank, machine in enumerate(per_rank):
        same = next((m for m in machines if {k: v for k, v in m.items() if k != "ranks"} == machine), None)
        if same is None:
            machines.append({"ranks": [rank], **machine})
        else:
            same["ranks"].append(rank)
    return machines


class RecordMachines(pl.Callback):
    """Adds every rank's machine to the run's start record on rank 0 (nothing in a single process)."""

    def __init__(self, output_dir: str):
        self.output_dir = output_dir

    def setup(self, trainer, pl_module, stage: str) -> None:
        rank, world_size = rank_and_world_size()
        if world_size < 2:
            return
        gathered: list[Any] = [None] * world_size
        dist.all_gather_object(gathered, dict(hardware()))  # every rank takes part
        history = getattr(pl_module, "provenance", None)
        if rank != 0 or not history:
            return
        machines = machines_of_ranks(gathered)
        history[-1]["machines"] = machines
        write_history(self.output_dir, history)
        if len(machines) > 1:
            log.info("Ranks on %d machines: %s", len(machines), "; ".join(
                f"ranks {', '.join(map(str, m['ranks']))} on {m['host']} ({', '.join(m['gpus']) or m['cpu']})"
                for m in machines))
