"""What Lightning's checkpoint leaves out and an exact resume needs: RNG states, the position in the data.

Lightning restores both optimizers, the loop progress and the module (counters, fixed noise, EMA); this
callback adds
- every rank's RNG states (torch, CUDA, numpy, python), restored right before the first resumed batch
  (under DDP each rank's RNG is first seeded with seed + rank, so ranks draw different latent codes);
- the position in the data: Lightning restarts an interrupted epoch's data iterator from its first batch,
  so the sampler's stream (gan/data/sampler.py) is moved to the start of the training batch the last trained
  iteration was in, whose trained iterations the module then skips (``GANModule.resume_from_batch_start``), so
  batch ends fall where the uninterrupted run's did;
- the W&B run id, which ``train.py`` reads before building the logger so a resumed run continues the same
  W&B run (see :func:`wandb_run_id`).
"""
from __future__ import annotations

import logging
import os
import random
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.distributed as dist
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states

from gan.utils.distributed import rank_and_world_size

log = logging.getLogger("gan")

WANDB_RUN_ID_KEY = "wandb_run_id"


def wandb_run_id(checkpoint: dict[str, Any]) -> str | None:
    """The W&B run id a checkpoint was written under (None if the run had no W&B logger)."""
    return checkpoint.get(WANDB_RUN_ID_KEY)


class ResumeState(pl.Callback):
    def __init__(self) -> None:
        self._rng_to_restore: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:
        return "ResumeState"

    def setup(self, trainer, pl_module, stage: str) -> None:
        # seed_everything gives every DDP rank the same seed, hence the same latent codes and penalty
        # interpolates: offset it by the rank so the global batch holds world_size distinct fake batches
        if trainer.world_size > 1:
            seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) + trainer.global_rank
            random.seed(seed)
            np.random.seed(seed % 2**32)
            torch.manual_seed(seed)

    # -------------------------------------------------------------------------------------------- saving
    def state_dict(self) -> dict[str, Any]:
        states = _collect_rng_states(include_cuda=True)
        # checkpoints are read with weights_only=True, which refuses numpy arrays; tensors, not lists of 624 and
        # 625 ints, since every object of a checkpoint costs its pickling (these were half of a tiny run's)
        kind, keys, position, has_gauss, cached = states["numpy"]
        states["numpy"] = (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached)
        version, internal, gauss_next = states["python"]
        states["python"] = (version, torch.tensor(internal, dtype=torch.int64), gauss_next)
        _, world_size = rank_and_world_size()
        if world_size > 1:
            gathered: list[Any] = [None] * world_size
            dist.all_gather_object(gathered, states)  # every rank saves with the trainer, so all take part
            return {"rng_per_rank": gathered}
        return {"rng_per_rank": [states]}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        from lightning.pytorch.loggers import WandbLogger

        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                checkpoint[WANDB_RUN_ID_KEY] = logger.version

    # ------------------------------------------------------------------------------------------- loading
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        per_rank = state_dict["rng_per_rank"]
        rank, world_size = rank_and_world_size()
        if len(per_rank) != world_size:
            log.warning("checkpoint was written by %d processes, resuming with a different number: "
                        "RNG states are not restored, so the resumed run is not an exact continuation", len(per_rank))
            return
        states = dict(per_rank[rank])
        kind, keys, position, has_gauss, cached = states["numpy"]
        keys = keys.numpy() if isinstance(keys, torch.Tensor) else keys  # a list in checkpoints before 2026-12-05
        states["numpy"] = (kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached)
        version, internal, gauss_next = states["python"]
        states["python"] = (version, tuple(int(v) for v in internal), gauss_next)  # random.setstate wants ints
        self._rng_to_restore = states

    def on_train_start(self, trainer, pl_module) -> None:
        self._continue_data_stream(trainer)
        if self._rng_to_restore is not None:
            _set_rng_states(self._rng_to_restore)
            self._rng_to_restore = None

    @staticmethod
    def _continue_data_stream(trainer) -> None:
        if trainer.ckpt_path is None:
            return
        module = trainer.lightning_module
        # a GAN module knows the real batches its iterations read (a batch may hold several iterations, and a
        # run may end inside one); otherwise every processed batch was one. `processed`, not `completed`: a
        # checkpoint written in on_train_batch_end (intervals, signals) is saved before Lightning marks it completed
        # (the start of the batch it was inside: its first training step skips what was trained, so batch ends fall
        # where they did, see GANModule.resume_from_batch_start)
        trained = module.resume_from_batch_start() if hasattr(module, "resume_from_batch_start") else None
        done = trainer.fit_loop.epoch_loop.batch_progress.total.processed
        for loader in trainer.fit_loop._combined_loader.flattened:
            sampler = getattr(loader, "sampler", None)
            if not hasattr(sampler, "resume_at"):
                log.warning("sampler %s cannot resume mid-stream: the resumed run sees other batches", type(sampler).__name__)
            elif trained is not None:
                sampler.resume_at(trained, loader.batch_size // module.real_batches_per_training_step)
            else:
                sampler.resume_at(done, loader.batch_size)
        # Lightning created the epoch's iterator before this hook (with workers it already drew indices)
        iter(trainer.fit_loop._data_fetcher)
