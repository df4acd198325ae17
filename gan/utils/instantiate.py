"""Building the pieces of a run from its composed config."""
from __future__ import annotations

import logging
import re
import traceback
import warnings
from pathlib import Path

from hydra.errors import InstantiationException
from lightning.pytorch.utilities import rank_zero_only
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gan.utils.errors import ConfigError, UserError, one_line
from gan.utils.option_types import check_option_types
from gan.utils.targets import class_path

log = logging.getLogger("gan")


def build(node, **kwargs):
    """``hydra.utils.instantiate``, but a config error surfaces as the one-line error the target raised
    (e.g. ValueError naming both shapes) instead of Hydra's multi-line wrapper, and an option of the wrong type
    (``model.generator.width=abc``) as one naming it, before anything is built."""
    check_option_types(node)
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = innermost_cause(error)
        if isinstance(cause, (ValueError, FileNotFoundError, RuntimeError)):
            raise with_config_key(cause, failing_key(error)) from None
        key = failing_key(error)
        refusal = (unlocatable_target(error, node, key) or missing_arguments(cause, node, key)
                   or module_set_up_before_its_base(cause, node, key))
        if refusal is not None:
            raise refusal from error  # one line at the entry points; the whole chain with HYDRA_FULL_ERROR=1
        raise


def node_at(node: DictConfig, key: str | None) -> DictConfig:
    """The config node at ``key`` (a full key, as Hydra names the node that failed) in ``node``'s config; ``node``
    itself when there is no key; an empty one when there is no such node."""
    failed = OmegaConf.select(node._get_root(), key) if key else node
    return failed if isinstance(failed, DictConfig) else OmegaConf.create({})


def target_at(node: DictConfig, key: str | None) -> str:
    """The ``_target_`` of the config node at ``key`` ('' when there is none)."""
    return str(node_at(node, key).get("_target_", ""))


#: Hydra's message for a ``_target_`` it cannot import, whatever the cause
UNLOCATABLE = re.compile(r"Error locating target '([^']+)'")


def unlocatable_target(error: InstantiationException, node: DictConfig, key: str | None) -> ConfigError | None:
    """``loss._target_=mypkg.losses.SoftHnge: it does not import: mypkg.losses has no SoftHnge; did you mean
    SoftHinge?``: Hydra's message read the same for a typo, a module not on the path and a module that raises while it
    is imported (an audit: the cause was shown only with HYDRA_FULL_ERROR=1, exit status 1). Only for the target of the
    node at ``key`` itself: a target a constructor instantiates on its own is its code's bug, and keeps its traceback."""
    from gan.utils.targets import IMPORTABLE_FROM, why_not_importable

    found = UNLOCATABLE.search(str(error))
    if found is None or found.group(1) != target_at(node, key):
        return None
    target = found.group(1)
    reason = why_not_importable(target) or "Hydra could not locate it"
    if reason.startswith("there is no module"):
        reason += f" (a module of one's own must be {IMPORTABLE_FROM})"
    return ConfigError(f"{key + '._target_' if key else '_target_'}={target}: it does not import: {reason}")


def module_set_up_before_its_base(cause: BaseException, node: DictConfig, key: str | None) -> ConfigError | None:
    """A network (or other ``nn.Module``) of one's own whose ``__init__`` assigns a layer or parameter before calling
    ``super().__init__()``: torch's ``cannot assign module before Module.__init__() call`` behind Hydra's wrapper (an
    audit). Only when the assignment is in the ``__init__`` of the class at ``key`` itself: a module it builds that has
    the same bug keeps its traceback, which names that module."""
    if not (isinstance(cause, AttributeError) and "before Module.__init__() call" in str(cause)) or key is None:
        return None
    target = target_at(node, key)
    import torch

    torch_dir = str(Path(torch.__file__).parent)
    own = [frame for frame, _ in traceback.walk_tb(cause.__traceback__) if not frame.f_code.co_filename.startswith(torch_dir)]
    last = own[-1] if own else None  # the frame that assigned: the one before torch's Module.__setattr__
    if last is None or last.f_code.co_name != "__init__" or type(last.f_locals.get("self")).__name__ != target.rsplit(".", 1)[-1]:
        return None
    return ConfigError(f"{key}._target_={target}: its __init__ sets a layer or parameter before it calls "
                       f"super().__init__(); expected super().__init__(...) first, as every torch nn.Module's __init__ "
                       f"(torch: {one_line(cause)})")


#: Python's refusal of a call without a required argument: ``MyGenerator.__init__() missing 1 required positional
#: argument: 'sample_shape'`` (two or more: ``'a' and 'b'``, ``'a', 'b', and 'c'``)
MISSING_ARGUMENTS = re.compile(r"^(\w+)\.__init__\(\) missing \d+ required (?:positional|keyword-only) arguments?: (.+)$")


def missing_arguments(cause: BaseException, node: DictConfig, key: str | None) -> ConfigError | None:
    """A target's constructor called without an option it requires (Hydra's four-line TypeError): one line naming the
    options to set. Only Python's refusal of the call of the class at ``key`` (a node of ``node``'s config), not a
    call inside its constructor that lacks an argument (a bug, which keeps its traceback)."""
    found = MISSING_ARGUMENTS.match(str(cause)) if isinstance(cause, TypeError) else None
    if found is None or key is None or target_at(node, key).rsplit(".", 1)[-1] != found.group(1):
        return None
    names = re.findall(r"'(\w+)'", found.group(2))
    if any(name in node_at(node, key) for name in names):  # set: not the target's own call (a base class of the same
        return None  # name called without it, a bug)
    return ConfigError(f"{key}: {found.group(1)} needs the option{'s' if len(names) > 1 else ''} "
                       f"{', '.join(names)}; expected {' '.join(f'{key}.{name}=<value>' for name in names)}")


def failing_key(error: InstantiationException) -> str | None:
    """The config key of the node whose target raised (Hydra ends its message with ``full_key: model.discriminator``)."""
    while isinstance(error, InstantiationException):
        last_line = str(error).rsplit("\n", 1)[-1]
        if last_line.startswith("full_key: "):
            return last_line.removeprefix("full_key: ")
        error = error.__cause__
    return None


#: a message that starts with an option's dotted key (``metrics.batch_size must be ...``) names its option already
LEADING_OPTION_KEY = re.compile(r"[A-Za-z_]\w*(\.\w+)+\b")


def with_config_key(error: BaseException, key: str | None) -> BaseException:
    """A user error from a target's constructor, led by the key of its config node when it does not name an option
    already: ``dropout must be in [0, 1)`` could be either network's, ``model.discriminator: dropout ...`` is one.
    (The metrics callback's node is ``callbacks.metrics``, but its options are set as ``metrics.*``, which its
    messages name.)"""
    message = str(error)
    if (not isinstance(error, UserError) or not key or f"{key}." in message or message.startswith(key)
            or LEADING_OPTION_KEY.match(message)):
        return error
    return type(error)(f"{key}: {message}")


def innermost_cause(error: BaseException) -> BaseException:
    """What the target raised behind Hydra's (possibly nested) InstantiationException; ``error`` itself when
    it is no wrapper or wraps nothing."""
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return error


#: Trainer options of automatic optimization: (the values that leave them off, in words; what to use instead)
MANUAL_OPTIMIZATION_REFUSES = {
    "gradient_clip_val": ((None, 0), "null or 0", "to bound the critic, model.weight_clip or a gradient penalty"),
    "accumulate_grad_batches": ((None, 1), "1", "for a larger batch, data.batch_size"),
}


def build_trainer(node: DictConfig, callbacks: list, **kwargs):
    """Lightning's Trainer from ``node``, with the callbacks its switches leave room for.

    ``trainer.enable_progress_bar=false`` and ``trainer.enable_checkpointing=false`` are how Lightning users
    turn the bar and checkpoints off, but Lightning refuses them beside a progress bar or checkpoint callback,
    and the default callback group has both: those callbacks are dropped instead (said in the log). An option
    the Trainer refuses (``devices=0``, an unknown ``precision`` or ``strategy``) is a user error naming it."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.callbacks import Checkpoint, ProgressBar

    for option, (neutral, expected, instead) in MANUAL_OPTIMIZATION_REFUSES.items():
        value = node.get(option)
        if value not in neutral:  # Lightning refuses it only once fit has started, with a traceback
            raise ConfigError(f"trainer.{option}={value}: the GAN module steps its two optimizers itself (Lightning's "
                              f"manual optimization), where Lightning does not apply it; expected {expected} ({instead})")
    check_accelerator_present(node.get("accelerator"))
    check_data_parallel_strategy(node)
    check_other_nodes_are_started(node)
    check_sync_batchnorm(node)
    check_no_validation_options(node)
    for switch, kind in (("enable_progress_bar", ProgressBar), ("enable_checkpointing", Checkpoint)):
        if node.get(switch) is False:
            dropped = [c for c in callbacks if isinstance(c, kind)]
            if dropped:
                log.info("trainer.%s=false: leaving out %s", switch, ", ".join(type(c).__name__ for c in dropped))
                callbacks = [c for c in callbacks if not isinstance(c, kind)]
    if node.get("enable_progress_bar") is None and not any(isinstance(c, ProgressBar) for c in callbacks):
        # callbacks.progress_bar=null (or callbacks=none): Lightning put its own bar in its place, which counts
        # training batches against max_steps' optimizer steps ("600/12000" at the end of a 6,000-step run)
        log.info("callbacks.progress_bar is off: no progress bar (trainer.enable_progress_bar=true for Lightning's, which "
                 "counts batches, not generator steps)")
        kwargs = {**kwargs, "enable_progress_bar": False}
    # TypeError: Lightning's refusal of a value's kind (devices=abc under CPUAccelerator), or an option the Trainer
    # does not have (+trainer.foo=1); the arguments built here are always accepted
    return build_refusable(node, "trainer", (ValueError, TypeError, MisconfigurationException), callbacks=callbacks, **kwargs)


#: strategies under which Lightning runs DDP without looking for unused parameters (``auto`` picks ``ddp`` for several
#: processes)
PLAIN_DDP_STRATEGIES = ("auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")


def process_count(value, accelerator) -> int | None:
    """How many devices ``trainer.devices`` asks for (None: a value Lightning refuses itself, in its own words)."""
    if OmegaConf.is_list(value) or isinstance(value, (list, tuple)):
        return len(value)
    if isinstance(value, str) and "," in value:  # "0,1": those GPUs
        return len([part for part in value.split(",") if part.strip()])
    if value in ("auto", -1, "-1"):  # every GPU there is (one process on the CPU)
        import torch

        gpus = accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
        return torch.cuda.device_count() if gpus else 1
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def runs_on_cpu(accelerator) -> bool:
    """Whether ``trainer.accelerator`` trains on the CPU here (``auto`` does without a CUDA GPU)."""
    import torch

    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())


def check_data_parallel_strategy(node: DictConfig) -> None:
    """Several processes (``trainer.devices`` or ``num_nodes`` > 1) under a strategy that makes them plain DDP
    (``auto``): G's parameters get no gradient in D's step, so DDP stops in the first backward with a traceback
    from every rank (``parameters that were not used in producing the loss``). trainer=ddp / ddp_cpu set
    ``ddp_find_unused_parameters_true``."""
    strategy = node.get("strategy", "auto")
    if not isinstance(strategy, str) or strategy not in PLAIN_DDP_STRATEGIES:
        return
    accelerator = node.get("accelerator", "auto")
    devices = process_count(node.get("devices", "auto"), accelerator)
    nodes = node.get("num_nodes", 1)
    many = [f"trainer.{key}={value}" for key, value, count in (("devices", node.get("devices"), devices),
                                                                 ("num_nodes", nodes, process_count(nodes, None)))
            if count is not None and count > 1]
    if not many:
        return
    preset = "trainer=ddp_cpu" if runs_on_cpu(accelerator) else "trainer=ddp"
    raise ConfigError(f"{' '.join(many)} with trainer.strategy={strategy}: Lightning would run plain DDP, which a GAN "
                      f"cannot use (G's parameters get no gradient in D's step); expected {preset} {' '.join(many)} "
                      f"(or trainer.strategy=ddp_find_unused_parameters_true)")


#: what a process started by hand on each node sets (Lightning's own environment reads these)
NODE_VARIABLES = ("NODE_RANK", "MASTER_ADDR")


def check_other_nodes_are_started(node: DictConfig) -> None:
    """``trainer.num_nodes`` > 1 in a process no cluster launcher started: Lightning waits for the other nodes'
    processes, which nothing starts, for ever (an audit's run waited until its 90 s timeout; it was documented, not
    refused). The launchers Lightning detects (SLURM's srun, torchrun, LSF, MPI) and a hand start with ``NODE_RANK``
    or ``MASTER_ADDR`` set (Lightning's own environment, Kubeflow's) are let through."""
    import os

    nodes = node.get("num_nodes", 1)
    count = process_count(nodes, None)
    if count is None or count <= 1 or any(os.environ.get(name) for name in NODE_VARIABLES):
        return
    from lightning.fabric.plugins.environments import LSFEnvironment, MPIEnvironment, SLURMEnvironment, TorchElasticEnvironment

    if any(environment.detect() for environment in (SLURMEnvironment, TorchElasticEnvironment, LSFEnvironment, MPIEnvironment)):
        return
    raise ConfigError(f"trainer.num_nodes={nodes}: no cluster launcher (SLURM's srun, torchrun, LSF, MPI) started this "
                      "process, so nothing starts the other nodes' processes and Lightning would wait for them for ever; "
                      "expected trainer.num_nodes=1 on one machine (trainer.devices sets its processes), or srun / torchrun "
                      "on every node (hydra/launcher=slurm submits such jobs)")


def check_sync_batchnorm(node: DictConfig) -> None:
    """``trainer=ddp_cpu trainer.sync_batchnorm=true``: torch's SyncBatchNorm runs on GPUs only, and the refusal
    came from every process after they had started, as two tracebacks (an audit)."""
    accelerator = node.get("accelerator", "auto")
    if node.get("sync_batchnorm") and runs_on_cpu(accelerator):
        raise ConfigError(f"trainer.sync_batchnorm=true on trainer.accelerator={accelerator}: torch's SyncBatchNorm runs "
                          "on GPUs only; expected trainer.sync_batchnorm=false on the CPU (each process keeps its own "
                          "batch-norm statistics), or trainer=ddp on GPUs")


#: Trainer options of Lightning's validation loop, which this framework does not run (``limit_val_batches: 0``;
#: metrics are scored by the metrics callback)
VALIDATION_OPTIONS = ("val_check_interval",)


#: Trainer options of a minimum length: Lightning then counts a stop asked before one epoch has ended as unmet, and
#: this framework's data is one endless epoch
MINIMUM_OPTIONS = ("min_steps", "min_epochs")


def check_no_validation_options(node: DictConfig) -> None:
    """``+trainer.val_check_interval=2`` was accepted and did nothing: there is no validation loop. Nor can a minimum
    length act: with ``+trainer.min_steps`` Lightning trained on to ``max_steps`` past every stop asked (a health
    check's ``action=stop``, ``trainer.max_time``), which waited for an epoch that never ends (a review)."""
    for option in VALIDATION_OPTIONS:
        if node.get(option) is not None:
            raise ConfigError(f"trainer.{option}={node.get(option)}: this framework runs no validation loop; metrics are "
                              "scored every metrics.every_n_generator_steps generator steps (set that instead)")
    for option in MINIMUM_OPTIONS:
        if node.get(option) is not None:
            raise ConfigError(f"trainer.{option}={node.get(option)}: Lightning would honour no early stop (a health "
                              "check's action=stop, trainer.max_time) before the first epoch ends, and this framework's "
                              "data is one endless epoch; expected no minimum (the run's length is generator_steps)")


def check_accelerator_present(accelerator) -> None:
    """``trainer=gpu`` or ``trainer=ddp`` on a machine without a GPU: Lightning's refusal, ``No supported gpu backend
    found!``, named neither the option nor what to use instead."""
    import torch

    mps = torch.backends.mps.is_available()  # Lightning's "gpu" takes Apple's GPU too
    if (accelerator == "cuda" and not torch.cuda.is_available()) or (accelerator == "gpu" and not (torch.cuda.is_available() or mps)):
        raise ConfigError(f"trainer.accelerator={accelerator}: this machine has no GPU torch can use (torch.cuda.is_available() "
                          "is False); expected trainer=cpu, or trainer=ddp_cpu for several processes on the CPU")


def build_refusable(node: DictConfig, name: str, refusals: tuple[type[BaseException], ...], **kwargs):
    """``build(node, **kwargs)``, where an option the target refuses (one of ``refusals``, e.g. Lightning's
    ``MisconfigurationException`` for ``ModelCheckpoint(every_n_train_steps=-10)``) is a user error naming
    ``name`` (``trainer: ...``, ``callbacks.best_checkpoint: ...``)."""
    try:
        return build(node, **kwargs)
    except UserError:
        raise
    except Exception as error:
        # build() unwraps a ValueError already; a MisconfigurationException is still inside Hydra's wrapper
        refused = innermost_cause(error)
        if not isinstance(refused, refusals):
            raise
        raise ConfigError(f"{name}: {one_line(refused)}") from error


def instantiate_group(group: DictConfig | None, kind: type | None = None, hooks: tuple[str, ...] = ()) -> list:
    """Every ``_target_`` node of a group (callbacks, loggers), in config order; null entries are skipped. ``kind``:
    the class each must be an instance of (Lightning's ``Callback`` for the callbacks group); ``hooks``: the hooks
    beyond ``kind``'s own that something calls (the GAN module's ``on_gan_iteration_end``), so that a method named
    like a hook that nothing calls is said."""
    if not group:
        return []
    if not isinstance(group, DictConfig):
        raise ConfigError(f"expected a config group mapping names to configs (callbacks.<name>: {{_target_: ...}}), "
                          f"got {type(group).__name__}")
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    built = []
    for node in group.values():
        if isinstance(node, DictConfig) and "_target_" in node:
            key = node._get_full_key(None)
            built.append(with_config_key_attribute(build_refusable(node, key, (MisconfigurationException,)), key))
            if kind is not None and not isinstance(built[-1], kind):  # Lightning failed on its first hook, a traceback
                raise ConfigError(f"{key}._target_={node._target_}: {type(built[-1]).__name__} is not a "
                                  f"{public_name(kind)}; expected a subclass of it")
            if kind is not None and rank_zero_only.rank == 0:  # once, not once per DDP process
                for line in hooks_nothing_calls(built[-1], kind, hooks, key):
                    log.warning(line)
    return built


def hooks_nothing_calls(obj: object, kind: type, hooks: tuple[str, ...], key: str) -> list[str]:
    """A line for each public method of ``obj`` named like a hook (``on_...``) that neither ``kind`` nor ``hooks`` has:
    Lightning calls only the hooks it knows, so a misspelt one (``on_train_batch_ends``) never ran, without a word (an
    audit of a callback of one's own)."""
    import difflib

    known = sorted({name for name in dir(kind) if name.startswith("on_")} | set(hooks))
    lines = []
    for name in sorted(n for n in dir(type(obj)) if n.startswith("on_") and callable(getattr(type(obj), n, None))):
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            lines.append(f"{key}: {type(obj).__name__}.{name} is no hook, so nothing calls it"
                         + (f"; did you mean {close[0]}?" if close else f" (the hooks: {public_name(kind)}'s and "
                            f"{', '.join(hooks) or 'none other'})"))
    return lines


def public_name(kind: type) -> str:
    """``lightning.pytorch.Callback`` rather than where the class is defined (``lightning.pytorch.callbacks.callback``)."""
    import importlib

    for module in ("lightning.pytorch", "lightning.pytorch.loggers"):
        if getattr(importlib.import_module(module), kind.__name__, None) is kind:
            return f"{module}.{kind.__name__}"
    return class_path(kind)


def with_config_key_attribute(obj, key: str):
    """``obj`` with ``config_key`` set to the key of the node it was built from (``callbacks.model_checkpoint``),
    for the checks made once the trainer holds it, which name its options by that key (gan/batching.py); an
    object that takes no attributes is left as it is."""
    try:
        obj.config_key = key
    except (AttributeError, TypeError):
        pass
    return obj


#: the model's two networks, as their config keys and GANModule attributes
NETWORKS = ("generator", "discriminator")


def build_module(cfg: DictConfig):
    """The GANModule of ``cfg.model`` with the loss and optimizer pair of ``cfg.loss``/``cfg.optimizer``."""
    for name, node in cfg.optimizer.items():  # built now, Adam missed its params: a TypeError traceback (an audit)
        if isinstance(node, DictConfig) and node.get("_partial_") is False:
            raise ConfigError(f"optimizer.{name}._partial_=false: expected true (the optimizer is built when training "
                              f"starts, with the {name}'s parameters)")
    optimizer = {name: build(node) for name, node in cfg.optimizer.items()}
    loss = build(cfg.loss)
    try:
        with warnings.catch_warnings():  # a layer of size 0 is reported below as the config error it is
            warnings.filterwarnings("ignore", message="Initializing zero-element tensors is a no-op")
            module = build(cfg.model, loss=loss, optimizer=optimizer)
    except (RuntimeError, InstantiationException) as error:
        # torch refusing a layer of negative size, or an initialiser dividing by a fan-in of 0
        cause = innermost_cause(error)
        if not (isinstance(cause, ZeroDivisionError) or "negative dimension" in str(cause)) or not non_positive_sizes(cfg.model, NETWORKS):
            raise
        raise network_size_error(cfg.model, NETWORKS, f"{type(cause).__name__}: {one_line(cause)}") from None
    for side in NETWORKS:
        empty = [(name, list(p.shape)) for name, p in getattr(module, side).named_parameters() if p.numel() == 0]
        if empty:
            name, shape = empty[0]
            raise network_size_error(cfg.model, (side,), f"the {side} has a layer of size 0 ({name}, shape {shape})")
    module.run_config = OmegaConf.to_container(cfg, resolve=True)
    if cfg.get("compile"):
        compile_networks(module)
    return module


def non_positive_sizes(model: DictConfig, sides: tuple[str, ...]) -> list[str]:
    """The integer options of the networks' configs that are 0 or negative, as overrides
    (``model.generator.width=0``, ``model.discriminator.hidden=[0, 10]``)."""
    bad = []
    for side in sides:
        for key, value in (model.get(side) or {}).items():
            values = list(value) if OmegaConf.is_list(value) else [value]
            if any(isinstance(v, int) and not isinstance(v, bool) and v <= 0 for v in values):
                bad.append(f"model.{side}.{key}={OmegaConf.to_container(value) if OmegaConf.is_list(value) else value}")
    return bad


def network_size_error(model: DictConfig, sides: tuple[str, ...], what: str) -> ConfigError:
    """A network that built a layer of size 0 (or that torch refused a negative one): the options at 0 or
    below are the likely cause, so the error names them (or the networks, when none is)."""
    named = ", ".join(non_positive_sizes(model, sides)) or "model." + " / model.".join(sides)
    return ConfigError(f"{named}: network sizes (widths, depths, latent_dim) must be positive: {what}")


def compile_networks(module) -> None:
    """torch.compile G and D in place (``nn.Module.compile``), so state_dict keys and checkpoints keep
    their names (``torch.compile(net)`` would prefix them with ``_orig_mod.``)."""
    module.generator.compile()
    # penalties on D's input gradients differentiate them, and compiled graphs have no double backward; others
    # (LeCam) need none (a review found D left eager for any penalty)
    differentiating = [p for p in getattr(module, "penalties", {}).values() if getattr(p, "penalizes_input_gradients", False)]
    if not differentiating:
        module.discriminator.compile()
    else:
        log.warning("compile=true: the discriminator stays eager because %s needs a double backward", differentiating)
