"""Gradient norms of the generator and the discriminator, read at the optimizer step.

Lightning calls ``on_before_optimizer_step`` from inside ``optimizer.step()`` for manual optimization
too, after the backward and (with AMP) after the gradients were unscaled, so the norms are the ones the
optimizer is about to apply, whatever the variant (penalties are part of the D backward). Norms stay on the
device until the batch ends and come to the host in one transfer, on logging steps only.

With ``precision=16-mixed`` a GradScaler skips every step whose scaled gradients overflowed (it provokes one
on purpose every ~2,000 clean steps to find the largest safe scale); those gradients were never applied, so
their norms (inf or NaN) are left out of ``grad/*``.
"""
from __future__ import annotations

import math
from collections import defaultdict

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from gan.utils.errors import ConfigError
from gan.utils.logging import log_scalars

NETWORKS = {"g": "generator", "d": "discriminator"}


def scaler_skips_nonfinite_steps(trainer) -> bool:
    """Whether a GradScaler (``16-mixed``) runs the optimizer steps: it skips any step with a non-finite
    gradient, so there a non-finite norm at ``on_before_optimizer_step`` is a skipped step, not a failure."""
    return getattr(trainer.precision_plugin, "scaler", None) is not None


class NetworkOfOptimizer:
    """``"g"`` or ``"d"``: which network's parameters an optimizer updates (by parameter identity, so it
    holds whatever order ``configure_optimizers`` uses), looked up once per optimizer."""

    def __init__(self) -> None:
        self._known: dict[int, str] = {}

    def __call__(self, optimizer: torch.optim.Optimizer, pl_module: pl.LightningModule) -> str:
        if id(optimizer) not in self._known:
            first = next(p for group in optimizer.param_groups for p in group["params"])
            owners = [short for short, attr in NETWORKS.items() if any(first is p for p in getattr(pl_module, attr).parameters())]
            if not owners:
                raise ValueError(f"optimizer {type(optimizer).__name__} updates neither the generator nor the discriminator")
            self._known[id(optimizer)] = owners[0]
        return self._known[id(optimizer)]


def layer_groups(network: nn.Module, depth: int | None) -> dict[str, list[nn.Parameter]]:
    """Trainable parameters grouped by module path: the first ``depth`` components (``blocks.0`` of
    ``blocks.0.1.weight``), or the whole module path with ``depth`` None. A spectral-norm
    parametrization counts as its layer's weight."""
    groups: dict[str, list[nn.Parameter]] = defaultdict(list)
    for name, param in network.named_parameters():
        if not param.requires_grad:
            continue
        path = name.split(".parametrizations.")[0].split(".")
        module_path = path if ".parametrizations." in name else path[:-1]
        groups[".".join(module_path[:depth] if depth else module_path) or "root"].append(param)
    return dict(groups)


def grad_norms(groups: dict[str, list[nn.Parameter]], norm_type: float = 2.0) -> tuple[Tensor, dict[str, Tensor]]:
    """(norm of all gradients, norm per group); parameters without a gradient count as zero."""
    per_group = {}
    for name, params in groups.items():
        grads = [p.grad for p in params if p.grad is not None]
        per_group[name] = torch.nn.utils.get_total_norm(grads, norm_type) if grads else params[0].new_zeros(())
    total = torch.linalg.vector_norm(torch.stack([n.float() for n in per_group.values()]), norm_type)
    return total, per_group


class GradNorm(pl.Callback):
    """Logs, every ``every_n_generator_steps`` generator steps:

    - ``grad/g/norm``, ``grad/d/norm``: the global gradient norm of each network's update,
    - ``grad/g_to_d_ratio``: their ratio,
    - ``grad/g/layer/<group>``, ``grad/d/layer/<group>`` (``log_layers``): one norm per layer group.

    The generator values are those of generator step N (a multiple of the interval); the discriminator's
    are those of the last discriminator step before it (with ``n_critic`` > 1, the last of the
    ``n_critic``). ``group_depth``: how many leading name components form a group (``net.3``,
    ``blocks.0``); null for one group per module.
    """

    def __init__(self, every_n_generator_steps: int = 50, norm_type: float = 2.0, log_layers: bool = True,
                 group_depth: int | None = 2):
        if int(every_n_generator_steps) < 1:
            raise ConfigError(f"every_n_generator_steps must be a positive integer, got {every_n_generator_steps}")
        if float(norm_type) <= 0:
            raise ConfigError(f"norm_type must be positive (2.0 for L2, inf for max), got {norm_type}")
        self.every = int(every_n_generator_steps)
        self.norm_type = float(norm_type)
        self.log_layers = bool(log_layers)
        self.group_depth = None if group_depth is None else int(group_depth)
        self._groups: dict[str, dict[str, list[nn.Parameter]]] = {}
        self._pending: dict[str, Tensor] = {}
        self._skipped_steps_possible = False
        self._network_of = NetworkOfOptimizer()
        #: the last values logged, for tests and for other callbacks
        self.last_logged: dict[str, float] = {}

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._groups = {short: layer_groups(getattr(pl_module, attr), self.group_depth) for short, attr in NETWORKS.items()}

    def on_train_start(self, trainer, pl_module) -> None:
        self._skipped_steps_possible = scaler_skips_nonfinite_steps(trainer)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        # the step about to be taken belongs to the cycle that ends with generator step generator_steps + 1
        if (pl_module.generator_steps + 1) % self.every:
            return
        short = self._network_of(optimizer, pl_module)
        total, per_layer = grad_norms(self._groups[short], self.norm_type)
        self._pending[f"grad/{short}/norm"] = total
        if self.log_layers:
            self._pending.update({f"grad/{short}/layer/{name}": v for name, v in per_layer.items()})

    def on_gan_iteration_end(self, trainer, pl_module) -> None:
        """After every GAN iteration (called by the module: a training batch may hold several), so the norms
        are logged at the generator step of their cycle."""
        if "grad/g/norm" not in self._pending:
            return
        pending, self._pending = self._pending, {}
        # one transfer for all of them
        values = dict(zip(pending, torch.stack([v.float() for v in pending.values()]).tolist()))
        if self._skipped_steps_possible:  # a step the scaler skipped: its gradients were never applied
            skipped = [short for short in NETWORKS if not math.isfinite(values.get(f"grad/{short}/norm", 0.0))]
            values = {name: v for name, v in values.items() if name.split("/")[1] not in skipped}
            if not values:
                return
        g, d = values.get("grad/g/norm"), values.get("grad/d/norm")
        if g is not None and d is not None and d > 0 and math.isfinite(g):
            values["grad/g_to_d_ratio"] = g / d
        self.last_logged = values
        log_scalars(trainer, values, pl_module.generator_steps)
