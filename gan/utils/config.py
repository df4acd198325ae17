"""OmegaConf resolvers the configs use that need nothing above ``gan.utils``. Registered on import of the
``gan`` package, together with the metric resolvers of :mod:`gan.resolvers`."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

from omegaconf import OmegaConf

from gan.utils.steps import optimizer_steps

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def slurm_batch_job_id() -> str | None:
    """The SLURM job id when this process is a batch job's (None outside SLURM and in an interactive
    allocation, which Lightning does not treat as SLURM either)."""
    if os.environ.get("SLURM_JOB_NAME") in ("bash", "interactive"):
        return None
    return os.environ.get("SLURM_JOB_ID")


def run_dir_name(timestamp: str, overrides: Iterable[str] = ()) -> str:
    """The name of a run's (or sweep's) directory: ``timestamp``, except in a SLURM batch job. A requeued
    job starts again with the same job id and command line, and must find the checkpoints its first start
    wrote, so there the name is ``slurm-<job id>-<hash of the command-line overrides>`` (the hash keeps
    apart several runs started by one job script)."""
    job_id = slurm_batch_job_id()
    if job_id is None:
        return str(timestamp)
    digest = hashlib.sha1("\n".join(str(o) for o in overrides).encode()).hexdigest()[:8]
    return f"slurm-{job_id}-{digest}"


def register_resolvers(extra: dict | None = None) -> None:
    from gan.utils.logging import run_group, run_name, run_tags, wandb_offline

    resolvers = {
        "project_root": lambda: str(PROJECT_ROOT),
        "optimizer_steps": optimizer_steps,
        "run_dir_name": run_dir_name,
        "wandb_offline": wandb_offline,
        "run_name": run_name,
        "run_group": run_group,
        "run_tags": run_tags,
        **(extra or {}),
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
