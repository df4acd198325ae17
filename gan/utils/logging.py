"""Logger-specific helpers, used by callbacks and train.py so the module stays logger-agnostic."""
from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Iterable

log = logging.getLogger("gan")


def wandb_has_credentials() -> bool:
    """True when an API key is available without asking: WANDB_API_KEY or `wandb login`'s netrc entry."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].rstrip("/")
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_offline() -> bool:
    """Offline unless the user asked for online (WANDB_MODE=online) or is logged in."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in {"offline", "dryrun", "disabled"}:
        return True
    if mode == "online":
        return False
    return not wandb_has_credentials()


def log_image(loggers: Iterable, key: str, path: str | Path, step: int) -> None:
    """Send a saved PNG to every active logger that shows images (W&B, TensorBoard)."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[str(path)], step=step)
        elif isinstance(logger, TensorBoardLogger):
            import numpy as np
            from PIL import Image

            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            logger.experiment.add_image(key, pixels, global_step=step, dataformats="HWC")


def finish_loggers(loggers: Iterable) -> None:
    """Close the W&B run (so the next multirun job starts its own) and say how to upload an offline run."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            run = logger.experiment
            run_dir = Path(run.dir).parent
            offline = bool(getattr(run.settings, "_offline", False)) or run.settings.mode == "offline"
            run.finish()
            if offline:
                log.info("W&B ran offline. To upload this run: wandb sync %s", run_dir)
