"""Config resolvers that read the metric registry. They live here, above both ``gan.utils`` and
``gan.metrics``, so that ``gan.utils`` imports nothing from the packages built on it."""
from __future__ import annotations

from gan.utils.config import register_resolvers

#: what a failed or diverged sweep trial returns: worse than any real value of the objective
FAILED_TRIAL_MAGNITUDE = 1.0e6


def metric_monitor(monitor: str | None, compute) -> str | None:
    """The logged key a best checkpoint follows (``val/...``); the first selected metric's when unset."""
    from gan.metrics.registry import best_monitor

    return best_monitor(monitor, compute)[0]


def metric_mode(monitor: str | None, compute) -> str:
    from gan.metrics.registry import best_monitor

    return best_monitor(monitor, compute)[1]


def higher_is_better(key: str | None, compute) -> bool:
    """Whether a larger value of the logged metric ``key`` (``val/...``) is better; False for a key the
    selected metrics do not log (train.py rejects such an objective before training, in one line)."""
    from gan.metrics.registry import logged_directions

    return bool(logged_directions(compute).get(key, False))


def metric_direction(key: str | None, compute) -> str:
    """Optuna's ``direction`` for the objective ``key``."""
    return "maximize" if higher_is_better(key, compute) else "minimize"


def failed_trial_value(key: str | None, compute) -> float:
    return -FAILED_TRIAL_MAGNITUDE if higher_is_better(key, compute) else FAILED_TRIAL_MAGNITUDE


def register() -> None:
    register_resolvers({"metric_monitor": metric_monitor, "metric_mode": metric_mode,
                        "metric_direction": metric_direction, "failed_trial_value": failed_trial_value})
