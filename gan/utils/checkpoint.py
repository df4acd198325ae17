"""Reading checkpoints back: safely (weights_only), with one clear error when a file is missing or bad."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from gan.utils.errors import CheckpointError

log = logging.getLogger("gan")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"cannot read checkpoint {path}: {type(error).__name__}: {error}".splitlines()[0]) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "run_config" not in checkpoint:
        raise CheckpointError(f"{path} is not a checkpoint of this framework (no state_dict/run_config)")
    return checkpoint


def run_config(checkpoint: dict[str, Any]) -> DictConfig:
    """The resolved configuration of the run that wrote the checkpoint."""
    return OmegaConf.create(checkpoint["run_config"])


EMA_PREFIX = "generator_ema.module."
#: how many times the average was updated (torch's AveragedModel keeps the same key)
EMA_UPDATES = "generator_ema.n_averaged"


def generator_state(checkpoint: dict[str, Any], use_ema: bool = True) -> tuple[dict[str, torch.Tensor], bool]:
    """The generator's weights, and whether they are the EMA copy's: the EMA copy's when the run kept one,
    ``use_ema`` and the average was updated at least once. Before its first update (a checkpoint written
    before ``model.ema_start``) the copy is still the untrained initial generator, so the raw one is used."""
    state = checkpoint["state_dict"]
    has_ema = any(key.startswith(EMA_PREFIX) for key in state)
    averaged = has_ema and int(state.get(EMA_UPDATES, 1)) > 0
    if use_ema and has_ema and not averaged:
        log.info("the EMA generator was never updated (the checkpoint is from before model.ema_start): using the raw generator")
    prefix = EMA_PREFIX if (use_ema and averaged) else "generator."
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}, prefix == EMA_PREFIX


def load_generator(checkpoint_path: str | Path, use_ema: bool = True, device: str | torch.device = "cpu"):
    """The trained generator of a run, in eval mode, EMA weights when the run kept them.

    ``generator.sample(n)`` returns ``n`` samples in the data's value range; a class-conditional generator
    takes ``generator.sample(n, labels=...)`` (one class index, or ``n`` of them; uniform classes without).
    """
    return generator_from_checkpoint(load_checkpoint(checkpoint_path), use_ema, device)


def generator_from_checkpoint(checkpoint: dict[str, Any], use_ema: bool = True, device: str | torch.device = "cpu"):
    """:func:`load_generator` for a checkpoint already read with :func:`load_checkpoint`."""
    from hydra.utils import instantiate

    generator = instantiate(run_config(checkpoint).model.generator)
    state, is_ema = generator_state(checkpoint, use_ema)
    generator.load_state_dict(state)
    generator.uses_ema_weights = is_ema
    generator.to(device)
    if is_ema:  # the saved batch-norm statistics may predate the last updates of the average
        generator.recompute_batch_norm_statistics()
    return generator.eval()
