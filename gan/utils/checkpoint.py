"""Reading checkpoints back: safely (weights_only), with one clear error when a file is missing or bad."""
from __future__ import annotations

import logging
import math
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from lightning.fabric.plugins import CheckpointIO
from omegaconf import DictConfig, OmegaConf

from gan.utils.errors import CheckpointError, ConfigError

log = logging.getLogger("gan")

# torch.save's zip format (torch >= 1.6) and its legacy pickle format (protocol 2+) start with these
ZIP_SIGNATURE, PICKLE_SIGNATURE = b"PK\x03\x04", b"\x80"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():  # a run's folder or its checkpoints folder: train.py takes one file (evaluate.py takes folders)
        raise CheckpointError(f"checkpoint {path} is a folder; expected a checkpoint file in it, e.g. "
                              f"ckpt_path={example_checkpoint(path)}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    problem = torch_file_problem(path, "checkpoint")
    if problem is not None:
        raise CheckpointError(f"cannot read checkpoint {path}: {problem}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"cannot read checkpoint {path}: {load_failure(error)}") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "run_config" not in checkpoint:
        raise CheckpointError(f"{path} is not a checkpoint of this framework (no state_dict/run_config)")
    return checkpoint


class ServeCheckedCheckpoint(CheckpointIO):
    """A Lightning strategy's checkpoint IO whose first load of ``path`` returns ``checkpoint``, the copy
    train.py has already read (with :func:`load_checkpoint`) and checked; saving, removing and every other load go
    to ``inner``, the strategy's own IO.

    Without it ``trainer.fit(ckpt_path=...)`` read the file a second time: twice the reading time of a large
    model's resume, and a file replaced in between would have restored other states than the ones checked. The
    copy is on the CPU (Lightning's own read kept the saved device); Lightning moves what it restores to the run's
    device (load_state_dict copies into the parameters, the optimizers' states are moved)."""

    def __init__(self, inner: CheckpointIO, path: str | Path, checkpoint: dict[str, Any]) -> None:
        self.inner, self._path, self._checkpoint = inner, Path(path).resolve(), checkpoint

    def load_checkpoint(self, path, *args, **kwargs) -> dict[str, Any]:
        if self._checkpoint is not None and Path(path).resolve() == self._path:
            checkpoint, self._checkpoint = self._checkpoint, None  # once: Lightning owns (and migrates) it now
            return checkpoint
        return self.inner.load_checkpoint(path, *args, **kwargs)

    def save_checkpoint(self, *args, **kwargs) -> None:
        self.inner.save_checkpoint(*args, **kwargs)

    def remove_checkpoint(self, *args, **kwargs) -> None:
        self.inner.remove_checkpoint(*args, **kwargs)

    def teardown(self) -> None:
        self.inner.teardown()


def run_folder(path: str | Path) -> Path:
    """The run a checkpoint belongs to: the folder above its ``checkpoints`` folder, or the folder it lies in."""
    folder = Path(path).resolve().parent
    return folder.parent if folder.name == "checkpoints" else folder


def example_checkpoint(folder: Path) -> Path:
    """A checkpoint file a user who gave ``folder`` likely meant: its last.ckpt, else its first .ckpt, looked for in
    the folder and, for a run's folder, in its checkpoints/ (the hint named a run folder's last.ckpt, which is not
    there: a README walk-through)."""
    for place in (folder, folder / "checkpoints"):
        files = sorted(place.glob("*.ckpt"))
        if files:
            return place / "last.ckpt" if (place / "last.ckpt").is_file() else files[0]
    return folder / "checkpoints" / "last.ckpt" if (folder / "checkpoints").is_dir() else folder / "last.ckpt"


def torch_file_problem(path: Path, kind: str = "file") -> str | None:
    """Why ``path`` cannot be a ``kind`` (checkpoint, weights file) that ``torch.save`` wrote (None: it may be),
    from its first bytes and, for a zip, its end and its records' checksums: torch reads another kind of file
    with a pickle error and a cut-short zip with "OSError: Invalid argument", neither of which names the problem,
    and a byte changed in place without any error (an audit: finite, wrong EMA weights)."""
    with open(path, "rb") as handle:
        signature = handle.read(4)
    size = path.stat().st_size
    if not signature.startswith((ZIP_SIGNATURE, PICKLE_SIGNATURE)):
        return (f"not a PyTorch {kind} (it starts with neither a zip archive's nor a pickle's signature; {size} bytes): "
                "another kind of file, or one that was not written completely")
    if signature == ZIP_SIGNATURE and not zipfile.is_zipfile(path):
        return (f"a zip archive without its end ({size} bytes, no central directory): the file was not written or "
                "copied completely")
    if signature == ZIP_SIGNATURE:  # every record's CRC-32: torch reads a changed byte in place without a word
        try:
            with zipfile.ZipFile(path) as archive:
                damaged = archive.testzip()
        except (zipfile.BadZipFile, OSError, RuntimeError) as error:
            damaged = str(error)
        if damaged is not None:
            return (f"its data is damaged ({damaged} fails its zip checksum; {size} bytes): the file changed after it "
                    "was written (a disk or copy error); use another copy")
    return None


def load_failure(error: Exception) -> str:
    """What torch's refusal says, in one line: for a weights-only refusal, the object it refused (torch's first
    line suggests ``weights_only=False``, which would run whatever code a foreign file holds)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    refused = next((line for line in lines if line.startswith("WeightsUnpickler error")), None)
    if refused is not None:
        what = re.search(r"Unsupported global: GLOBAL (\S+)", refused)
        shown = what.group(1) if what else refused.removeprefix("WeightsUnpickler error: ")
        return f"it holds objects a weights-only load refuses ({shown}); this framework's checkpoints hold tensors " \
               "and plain values only"
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def run_config(checkpoint: dict[str, Any]) -> DictConfig:
    """The resolved configuration of the run that wrote the checkpoint."""
    return OmegaConf.create(checkpoint["run_config"])


#: what Lightning's restore of a training run reads from a checkpoint, beyond the weights
RESUME_KEYS = ("optimizer_states", "loops", "gan_counters")


def check_resumable(checkpoint: dict[str, Any], path: str | Path, state: dict[str, torch.Tensor],
                    config: dict[str, Any] | None) -> None:
    """Resuming from ``checkpoint`` needs what Lightning restores (:data:`RESUME_KEYS`), finite weights, and
    weights that fit the module this run built (``state``: the module's state_dict, ``config``: its resolved run
    config). A resume with other networks (``ckpt_path=... model=wgan_gp`` on a dcgan checkpoint) would
    otherwise fail inside Lightning with torch's list of every missing and unexpected key; this names the first
    mismatch and the options that differ."""
    missing = [key for key in RESUME_KEYS if key not in checkpoint]
    if missing:  # Lightning's KeyError traceback, or (gan_counters) a run that ended at once with status 0
        hint = "; it holds the weights only (save_weights_only)" if "optimizer_states" in missing else ""
        raise CheckpointError(f"cannot resume from {path}: it has no {', '.join(missing)}{hint}; a resume needs a full "
                              "checkpoint of this framework (its weights alone load with gan.load_generator or evaluate.py)")
    non_finite = non_finite_weights(checkpoint["state_dict"])
    if non_finite:  # the framework never saves them: an edited or foreign file, which trained on into "divergence"
        raise CheckpointError(f"cannot resume from {path}: {len(non_finite)} of its weight tensors hold NaN or Inf (e.g. "
                              f"{non_finite[0]}); this framework never saves such weights, so the file was edited or "
                              "written by another program")
    check_same_optimizers(checkpoint, path, config)
    mismatch = tensors_that_do_not_fit(checkpoint["state_dict"], state)
    if mismatch is None:
        return
    stateful = stateful_parts_that_differ(checkpoint["state_dict"], state)
    networks_fit = tensors_that_do_not_fit(*(without_stateful_parts(tensors) for tensors in (checkpoint["state_dict"], state))) is None
    if stateful and networks_fit:  # not the networks: "its weights do not fit the networks" named none of them (an audit)
        part, had = stateful[0]
        raise CheckpointError(f"cannot resume from {path}: its run kept {'a' if had else 'no'} state for {part}, which "
                              f"this run {'has none of' if had else 'does'} (ADA's probability, LeCam's anchors, the EMA "
                              "generator: a resume continues them, so they stay as the run began); resume with the options "
                              "it was trained with, or start a new run without ckpt_path")
    differing = network_options_that_differ(checkpoint.get("run_config") or {}, config or {})
    because = f"; the checkpoint's run had {', '.join(differing)}" if differing else ""
    raise CheckpointError(f"cannot resume from {path}: its weights do not fit the networks this run builds (tensors: "
                          f"{mismatch}){because}; resume with the options it was trained with, or start a new run "
                          "without ckpt_path")


#: the module's parts beside the networks that hold state (state-dict key prefix -> the option that adds it)
STATEFUL_PARTS = {"augment.": "model.augment", "generator_ema.": "model.ema_decay"}


def stateful_part(key: str) -> str | None:
    """The option of the stateful part beside the networks a state-dict key belongs to (:data:`STATEFUL_PARTS`, a
    penalty with state under ``penalties.<name>``), or None (the networks, the fixed noise)."""
    if key.startswith("penalties."):
        return f"model.penalties.{key.split('.')[1]}"
    return next((option for prefix, option in STATEFUL_PARTS.items() if key.startswith(prefix)), None)


def without_stateful_parts(state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` without the keys of the module's stateful parts beside the networks."""
    return {key: value for key, value in state.items() if stateful_part(key) is None}


def stateful_parts_that_differ(saved: Mapping[str, Any], built: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """(the option, whether the checkpoint has it) for each stateful part of the module (augmentation, EMA, a penalty
    with state under ``penalties.<name>``) that one side has and the other lacks."""
    then, now = ({stateful_part(key) for key in keys} - {None} for keys in (saved, built))
    return sorted([(part, True) for part in then - now] + [(part, False) for part in now - then])


def check_optimizer_states_fit(checkpoint: dict[str, Any], path: str | Path,
                               optimized: Sequence[Sequence[torch.Tensor]]) -> None:
    """Each saved optimizer's per-parameter state (Adam's moments, ...) has the shape of the parameter it belongs
    to: ``optimized`` holds, per optimizer of the module (generator, discriminator), the parameters it steps, in
    its order. torch's fused Adam read a state of another shape out of bounds and the process died of a
    segmentation fault, with no message (an audit, on an edited checkpoint)."""
    saved = checkpoint["optimizer_states"]
    if len(saved) != len(optimized):
        raise CheckpointError(f"cannot resume from {path}: it holds {len(saved)} optimizer states, this run builds "
                              f"{len(optimized)} optimizers (generator, discriminator)")
    for network, state, parameters in zip(("generator", "discriminator"), saved, optimized):
        parameters = list(parameters)
        counted = sum(len(group.get("params", [])) for group in state.get("param_groups", []))
        if counted != len(parameters):
            raise CheckpointError(f"cannot resume from {path}: its {network} optimizer state is for {counted} parameters, "
                                  f"this run's {network} has {len(parameters)}")
        for index, values in (state.get("state") or {}).items():
            shape = tuple(parameters[int(index)].shape) if 0 <= int(index) < len(parameters) else None
            for name, value in values.items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and tuple(value.shape) != shape:
                    raise CheckpointError(f"cannot resume from {path}: its {network} optimizer state does not fit this "
                                          f"run's parameters (parameter {index}: {name} is {list(value.shape)} there, "
                                          f"the parameter {list(shape) if shape else 'absent'} here); the file was "
                                          "edited or written by another run")


def non_finite_weights(state: Mapping[str, Any]) -> list[str]:
    """The names of a state dict's floating-point tensors that hold NaN or Inf, in order (this framework never
    saves such weights). All finite costs a few kernels and one device sync: the largest magnitude of each tensor
    is NaN/Inf exactly when the tensor holds one (no sum to overflow), where a check per tensor took two each."""
    tensors = {name: t for name, t in state.items() if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel()}
    if not tensors or bool(torch.stack(torch._foreach_norm(list(tensors.values()), math.inf)).isfinite().all()):
        return []
    return [name for name, t in tensors.items() if not bool(t.isfinite().all())]


def tensors_that_do_not_fit(saved: dict[str, torch.Tensor], built: dict[str, torch.Tensor], prefix: str = "") -> str | None:
    """``<counts>; e.g. <one of them>`` for the tensors of a checkpoint (``saved``) that do not fit those of what
    this run built (``built``): missing there, not built here, or of another shape; None when all fit. ``prefix``
    leads the example's key (the state's keys without the module's prefix)."""
    saved_shapes = {key: tuple(value.shape) for key, value in saved.items()}
    built_shapes = {key: tuple(value.shape) for key, value in built.items()}
    missing, unexpected = sorted(built_shapes.keys() - saved_shapes.keys()), sorted(saved_shapes.keys() - built_shapes.keys())
    reshaped = sorted(key for key in built_shapes.keys() & saved_shapes.keys() if built_shapes[key] != saved_shapes[key])
    if not (missing or unexpected or reshaped):
        return None
    if reshaped:
        key = reshaped[0]
        example = f"{prefix}{key} is {list(saved_shapes[key])} there, {list(built_shapes[key])} here"
    else:
        example = f"{prefix}{(missing or unexpected)[0]} is {'missing there' if missing else 'not built here'}"
    counts = ", ".join(f"{n} {what}" for n, what in ((len(missing), "missing"), (len(unexpected), "unexpected"),
                                                      (len(reshaped), "of another shape")) if n)
    return f"{counts}; e.g. {example}"


def check_same_optimizers(checkpoint: dict[str, Any], path: str | Path, config: dict[str, Any] | None) -> None:
    """The optimizers' classes of the checkpoint's run: another class cannot take its state (RMSprop has no Adam
    moments), and Lightning's restore failed with a KeyError inside torch (``'square_avg'``)."""
    saved, now = ((c or {}).get("optimizer") or {} for c in (checkpoint.get("run_config"), config))
    for network in ("generator", "discriminator"):
        then, current = ((o.get(network) or {}).get("_target_") for o in (saved, now))
        if then and current and then != current:
            raise CheckpointError(f"cannot resume from {path}: its run trained the {network} with {then}, this run builds "
                                  f"{current} (optimizer.{network}), whose state it cannot take; resume with the optimizer "
                                  "it was trained with, or start a new run without ckpt_path")


def leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """A resolved config's leaves by dotted key (lists are leaves)."""
    if isinstance(node, dict):
        return {leaf: value for key, child in node.items()
                for leaf, value in leaves(child, f"{prefix}.{key}" if prefix else str(key)).items()}
    return {prefix: node}


def network_options_that_differ(saved: dict[str, Any], now: dict[str, Any], limit: int = 4) -> list[str]:
    """``key=value`` (the checkpoint's value) for the leaves of the networks' configs and the data's sample shape
    that differ between two resolved run configs, at most ``limit``."""
    def networks(config: dict[str, Any]) -> dict[str, Any]:
        model, data = config.get("model") or {}, config.get("data") or {}
        return {**leaves(model.get("generator"), "model.generator"), **leaves(model.get("discriminator"), "model.discriminator"),
                "data.sample_shape": data.get("sample_shape")}

    then, current = networks(saved), networks(now)
    keys = [key for key in then if key.endswith("._target_")] + [key for key in then if not key.endswith("._target_")]
    return [f"{key}={then[key]}" for key in keys if then.get(key) != current.get(key, object())][:limit]


def trained_generator_steps(checkpoint: dict[str, Any]) -> int:
    """The generator steps the checkpoint's run had trained when it was saved."""
    return int((checkpoint.get("gan_counters") or {}).get("generator_steps", 0))


def check_resume_length(checkpoint: dict[str, Any], path: str | Path, generator_steps: int) -> None:
    """``generator_steps`` is the run's total length: a resume with fewer steps than the checkpoint has trained
    used to end at once with status 0 (Lightning's max_steps already reached), which reads as success to a user
    who meant "N more steps". The same number is a finished run resumed (a requeued job): said, not refused."""
    done = trained_generator_steps(checkpoint)
    if generator_steps < done:
        raise ConfigError(f"generator_steps={generator_steps} but {path} has already trained {done} generator steps: "
                          f"generator_steps is the run's total length, not the steps to add (expected more than {done}, "
                          f"e.g. generator_steps={done + generator_steps} for {generator_steps} more)")
    if generator_steps == done:
        log.warning("%s has already trained generator_steps=%d generator steps: nothing is left to train (set "
                    "generator_steps to a larger total to continue)", path, done)


#: options expected to differ when a run is resumed: its length, where it writes, how it logs, the seed (the
#: checkpoint's RNG states replace it) and the derived optimizer-step count
RESUME_INDEPENDENT = ("generator_steps", "ckpt_path", "paths", "logger", "seed", "tags", "task_name", "trainer.max_steps",
                      "cpu_threads")
#: options that change nothing while another one is off (0 or null in both runs): instance noise's annealing
#: length follows generator_steps by default, and would be listed at every extended resume without it
INERT_UNLESS = {"model.instance_noise_steps": "model.instance_noise_std",
                "model.instance_noise_schedule": "model.instance_noise_std"}


def options_changed_since(saved: dict[str, Any], now: dict[str, Any], limit: int = 6) -> list[str]:
    """``key: old -> new`` for the options of a resumed run that differ from the checkpoint's run, leaving out those
    expected to differ (:data:`RESUME_INDEPENDENT`) and the paths inside either run's directory; at most ``limit``
    and a count of the rest."""
    def relevant(config: dict[str, Any]) -> dict[str, Any]:
        run_dir = str((config.get("paths") or {}).get("output_dir") or "") or None
        return {key: value for key, value in leaves(config).items()
                if not any(key == p or key.startswith(p + ".") for p in RESUME_INDEPENDENT)
                and not (run_dir and isinstance(value, str) and value.startswith(run_dir))}

    then, current = relevant(saved), relevant(now)
    missing = object()
    inert = {key for key, gate in INERT_UNLESS.items() if not then.get(gate) and not current.get(gate)}
    changed = [f"{key}: {then.get(key, 'unset')} -> {current.get(key, 'unset')}"
               for key in sorted(then.keys() | current.keys())
               if then.get(key, missing) != current.get(key, missing) and key not in inert]
    return changed[:limit] + ([f"and {len(changed) - limit} more"] if len(changed) > limit else [])


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
    ``device``: where the generator is put (``"cuda"``, ``"cuda:1"``; one this machine has).
    """
    from gan.utils.device import check_torch_device

    check_torch_device(device, "load_generator(device)", fallback="cpu")  # torch's driver error on a machine without that GPU (an audit)
    return generator_from_checkpoint(load_checkpoint(checkpoint_path), use_ema, device, path=checkpoint_path)


def generator_from_checkpoint(checkpoint: dict[str, Any], use_ema: bool = True, device: str | torch.device = "cpu",
                              path: str | Path | None = None):
    """:func:`load_generator` for a checkpoint already read with :func:`load_checkpoint` (``path``: its file,
    which leads the error messages).

    The stored generator config and weights must build and fit this version's generator: a class renamed since,
    an option it no longer takes, weights of another width or missing tensors are a :class:`CheckpointError`
    saying what does not fit (``instantiate`` and ``load_state_dict`` raised them as tracebacks). Only those are
    looked for: whatever else the generator's constructor raises keeps its traceback."""
    import inspect

    from hydra._internal.utils import _locate  # hydra.utils.get_object also logs its failure as an error
    from hydra.utils import instantiate

    where = str(path) if path is not None else "checkpoint"
    node = OmegaConf.select(run_config(checkpoint), "model.generator")
    if not OmegaConf.is_dict(node) or not node.get("_target_"):
        raise CheckpointError(f"{where}: its run_config has no model.generator._target_, so it does not say which "
                              "generator to build; expected a checkpoint written by train.py")
    target = str(node._target_)
    try:
        generator_class = _locate(target)
    except Exception:  # Hydra's locate raises ImportError for whatever stopped the import
        from gan.utils.targets import IMPORTABLE_FROM, why_not_importable

        if target.split(".")[0] != "gan":  # a class of one's own: its module is not importable here (an audit)
            raise CheckpointError(f"{where}: its generator, model.generator._target_={target}, does not import here: "
                                  f"{why_not_importable(target)}; expected that module {IMPORTABLE_FROM}, as where it "
                                  "trained") from None
        raise CheckpointError(f"{where}: its generator, model.generator._target_={target}, does not exist in this "
                              "version of the framework (renamed or removed); evaluate it with the version that "
                              "trained it") from None
    options = {key: value for key, value in node.items() if not str(key).startswith("_")}  # not hydra's _target_ etc.
    try:  # the stored options against the class's parameters, before anything is built
        inspect.signature(generator_class).bind(**options)
    except TypeError as error:
        raise CheckpointError(f"{where}: its model.generator does not fit {target} of this version ({error}); evaluate "
                              "it with the version that trained it") from None
    generator = instantiate(node)
    state, is_ema = generator_state(checkpoint, use_ema)

    mismatch = tensors_that_do_not_fit(state, generator.state_dict(), prefix=EMA_PREFIX if is_ema else "generator.")
    if mismatch is not None:
        raise CheckpointError(f"{where}: its generator weights do not fit the {target} its run_config builds (tensors: "
                              f"{mismatch}); expected the weights and run_config of one run, as train.py writes them")
    non_finite = non_finite_weights(state)
    if non_finite:  # the framework never saves them; such a generator would only draw NaN
        raise CheckpointError(f"{where}: {len(non_finite)} of its generator's weight tensors hold NaN or Inf (e.g. "
                              f"{non_finite[0]}); this framework never saves such weights, so the file was edited or "
                              "written by another program")
    generator.load_state_dict(state)
    generator.uses_ema_weights = is_ema
    generator.to(device)
    if is_ema and not checkpoint.get("ema_statistics_fresh"):
        # the saved batch-norm statistics and spectral norms' vectors predate the average's last update, as in
        # training before the copy is read: recomputed as training would (when fresh, as saved: recomputing them again
        # moved spectral norm's vectors on, so evaluate.py scored another generator than the run did)
        generator.recompute_batch_norm_statistics()
        generator.recompute_spectral_norms()
    return generator.eval()
