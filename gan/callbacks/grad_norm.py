"""Gradient norms of the generator and the discriminator, read at the optimizer step.

Lightning calls ``on_before_optimizer_step`` from inside ``optimizer.step()`` for manual optimization
too, after the backward and (with AMP) after the gradients were unscaled, so the norms are the ones the
optimizer is about to apply, whatever the variant (penalties are part of the D backward). Each update's
per-parameter norms are one ``_foreach_norm`` kernel; they stay on the device until the iteration ends and come
to the host in one transfer, on logging steps only, where the layers' and the networks' norms are composed from
them (a p-norm of a concatenation is the p-norm of its parts' p-norms).

With ``precision=16-mixed`` a GradScaler skips every step whose scaled gradients overflowed (it provokes one
on purpose every ~2,000 clean steps to find the largest safe scale); those gradients were never applied, so
their norms (inf or NaN) are left out of ``grad/*``.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from gan.utils.errors import ConfigError
from gan.utils.logging import log_scalars
from gan.utils.steps import interval_crossed

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


def combined_norm(norms: Iterable[float], norm_type: float) -> float:
    """The ``norm_type``-norm of a concatenation from the norms of its parts, in double precision (scaled by the
    largest part, so no power overflows); NaN if a part is NaN, 0 for no parts."""
    norms = list(norms)
    if any(math.isnan(n) for n in norms):
        return math.nan
    largest = max(norms, default=0.0)
    if math.isinf(norm_type) or largest in (0.0, math.inf):
        return largest
    return largest * math.fsum((n / largest) ** norm_type for n in norms) ** (1.0 / norm_type)


def g_to_d_ratio(g: float | None, d: float | None) -> float | None:
    """G's gradient norm over D's, where both were read and D's is positive (a D gradient of exactly 0, e.g. a
    D whose every unit is dead, has no ratio rather than a division by zero)."""
    if g is None or d is None or not d > 0 or not math.isfinite(g):
        return None
    return g / d


class GroupedGradients:
    """The gradients of one network's trainable parameters, with the layer group of each, in a fixed order."""

    def __init__(self, groups: dict[str, list[nn.Parameter]]):
        self.parameters = [p for params in groups.values() for p in params]
        self.group_of = [name for name, params in groups.items() for _ in params]

    def norms(self, norm_type: float) -> tuple[list[str], Tensor]:
        """(the group of each norm, the per-parameter gradient norms: one kernel, on the device); parameters
        without a gradient are left out (they count as zero)."""
        present = [(group, p.grad) for group, p in zip(self.group_of, self.parameters) if p.grad is not None]
        if not present:
            return [], torch.zeros(0, device=self.parameters[0].device if self.parameters else None)
        groups, grads = zip(*present)
        return list(groups), torch.stack(torch._foreach_norm(list(grads), norm_type)).float()


def compose_norms(groups: list[str], norms: list[float], all_groups: Iterable[str], norm_type: float) -> tuple[float, dict[str, float]]:
    """(norm of all gradients, norm per group) from per-parameter norms; a group without gradients is 0."""
    members: dict[str, list[float]] = {name: [] for name in all_groups}
    for group, norm in zip(groups, norms):
        members[group].append(norm)
    per_group = {name: combined_norm(values, norm_type) for name, values in members.items()}
    return combined_norm(norms, norm_type), per_group


class GradNorm(pl.Callback):
    """Logs, every ``every_n_generator_steps`` generator steps:

    - ``grad/g/norm``, ``grad/d/norm``: the global gradient norm of each network's update,
    - ``grad/g_to_d_ratio``: their ratio,
    - ``grad/g/layer/<group>``, ``grad/d/layer/<group>`` (``log_layers``): one norm per layer group.

    The generator values are those of generator step N (a multiple of the interval); the discriminator's
    are those of the last discriminator step of N's iteration (with ``n_critic`` > 1, the last of the
    ``n_critic``, before the iteration's ``n_generator`` G steps). They are logged when the iteration ends, at
    its last generator step (N, unless ``n_generator`` > 1 and N is not the iteration's last). ``group_depth``:
    how many leading name components form a group (``net.3``, ``blocks.0``); null for one group per module.
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
        if group_depth is not None and int(group_depth) < 1:  # 0 grouped as null did, a negative one cut the path's end
            raise ConfigError(f"group_depth must be a positive integer (leading name components per group) or null (one "
                              f"group per module), got {group_depth}")
        self.group_depth = None if group_depth is None else int(group_depth)
        self._groups: dict[str, dict[str, list[nn.Parameter]]] = {}
        self._gradients: dict[str, GroupedGradients] = {}
        self._pending: dict[str, tuple[list[str], Tensor]] = {}  # per network: each norm's group, the norms
        self._skipped_steps_possible = False
        self._network_of = NetworkOfOptimizer()
        #: the last values logged, for tests and for other callbacks
        self.last_logged: dict[str, float] = {}

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._groups = {short: layer_groups(getattr(pl_module, attr), self.group_depth) for short, attr in NETWORKS.items()}
        self._gradients = {short: GroupedGradients(groups) for short, groups in self._groups.items()}

    def on_train_start(self, trainer, pl_module) -> None:
        self._skipped_steps_possible = scaler_skips_nonfinite_steps(trainer)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        step = pl_module.generator_steps  # the generator steps before this update
        generator_due = not (step + 1) % self.every  # a G update that makes generator step step + 1, a multiple
        # an iteration's D steps come before its n_generator G steps: does the iteration reach a multiple? ((step + 1)
        # % every, as for G, missed every D step with n_generator = 2 and an even interval: a review)
        discriminator_due = interval_crossed(step + getattr(pl_module, "n_generator", 1), step, self.every)
        if not (generator_due or discriminator_due):  # most steps: two integer tests, no lookup
            return
        short = self._network_of(optimizer, pl_module)
        if generator_due if short == "g" else discriminator_due:
            self._pending[short] = self._gradients[short].norms(self.norm_type)

    def on_gan_iteration_end(self, trainer, pl_module) -> None:
        """After every GAN iteration (called by the module: a training batch may hold several), so the norms
        are logged at the generator step of their cycle."""
        if "g" not in self._pending:
            return
        pending, self._pending = self._pending, {}
        # one transfer for all of them
        host = torch.cat([norms for _, norms in pending.values()]).tolist()
        values, start = {}, 0
        for short, (groups, norms) in pending.items():
            total, per_layer = compose_norms(groups, host[start:start + len(groups)], self._groups[short], self.norm_type)
            start += len(groups)
            values[f"grad/{short}/norm"] = total
            if self.log_layers:
                values.update({f"grad/{short}/layer/{name}": v for name, v in per_layer.items()})
        if self._skipped_steps_possible:  # a step the scaler skipped: its gradients were never applied
            skipped = [short for short in NETWORKS if not math.isfinite(values.get(f"grad/{short}/norm", 0.0))]
            values = {name: v for name, v in values.items() if name.split("/")[1] not in skipped}
            if not values:
                return
        ratio = g_to_d_ratio(values.get("grad/g/norm"), values.get("grad/d/norm"))
        if ratio is not None:
            values["grad/g_to_d_ratio"] = ratio
        self.last_logged = values
        log_scalars(trainer, values, pl_module.generator_steps)
