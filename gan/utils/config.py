"""OmegaConf resolvers the configs use. Registered on import of the ``gan`` package."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from gan.utils.steps import optimizer_steps

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def metric_monitor(monitor: str | None, compute) -> str | None:
    """The logged key a best checkpoint follows (``val/...``); the first selected metric's when unset."""
    from gan.metrics.registry import best_monitor

    return best_monitor(monitor, compute)[0]


def metric_mode(monitor: str | None, compute) -> str:
    from gan.metrics.registry import best_monitor

    return best_monitor(monitor, compute)[1]


def register_resolvers() -> None:
    from gan.utils.logging import run_group, run_name, run_tags, wandb_offline

    resolvers = {
        "project_root": lambda: str(PROJECT_ROOT),
        "optimizer_steps": optimizer_steps,
        "wandb_offline": wandb_offline,
        "run_name": run_name,
        "run_group": run_group,
        "run_tags": run_tags,
        "metric_monitor": metric_monitor,
        "metric_mode": metric_mode,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
