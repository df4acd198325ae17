"""Building the pieces of a run from its composed config."""
from __future__ import annotations

import logging

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gan.utils.errors import ConfigError

log = logging.getLogger("gan")


def build(node, **kwargs):
    """``hydra.utils.instantiate``, but a config error surfaces as the one-line error the target raised
    (e.g. ValueError naming both shapes) instead of Hydra's multi-line wrapper."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, (ValueError, FileNotFoundError, RuntimeError)):
            raise cause from None
        raise


def instantiate_group(group: DictConfig | None) -> list:
    """Every ``_target_`` node of a group (callbacks, loggers), in config order; null entries are skipped."""
    if not group:
        return []
    if not isinstance(group, DictConfig):
        raise ConfigError(f"expected a config group mapping names to configs (callbacks.<name>: {{_target_: ...}}), "
                          f"got {type(group).__name__}")
    return [build(node) for node in group.values() if isinstance(node, DictConfig) and "_target_" in node]


def build_module(cfg: DictConfig):
    """The GANModule of ``cfg.model`` with the loss and optimizer pair of ``cfg.loss``/``cfg.optimizer``."""
    optimizer = {name: build(node) for name, node in cfg.optimizer.items()}
    module = build(cfg.model, loss=build(cfg.loss), optimizer=optimizer)
    module.run_config = OmegaConf.to_container(cfg, resolve=True)
    if cfg.get("compile"):
        compile_networks(module)
    return module


def compile_networks(module) -> None:
    """torch.compile G and D in place (``nn.Module.compile``), so state_dict keys and checkpoints keep
    their names (``torch.compile(net)`` would prefix them with ``_orig_mod.``)."""
    module.generator.compile()
    penalties = list(getattr(module, "penalties", {}).values())
    if not penalties:
        module.discriminator.compile()
    else:  # the penalties differentiate D's input gradient, and compiled graphs have no double backward
        log.warning("compile=true: the discriminator stays eager because %s needs a double backward", penalties)
